"""The recipe ablation table: for finished `keras-anytime train` runs, val accuracy at the
first and last exits, the mean over exits, and early-exit accuracy at half the MACs.

Each RUN is a `train --out` folder (its `eval.json` holds the per-exit val accuracy of the
final weights, its `run.json` the arguments). Early exit: an
`inference.EarlyExitPredictor` on the run's `model.keras`, calibrated for a budget of 0.5
of the last exit's MACs on the first half of `val` (records 45,000..47,499) and measured
on the second half, as `early_exit.py` does.

    python3 benchmarks/recipe_ablation.py runs/abl-e10/* --data-dir ../shared/data/cifar10

Prints a markdown table and writes `--json` if given.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import keras
import numpy as np

import keras_anytime  # noqa: F401  registers the package's classes for load_model
from keras_anytime import datasets
from keras_anytime.inference import EarlyExitPredictor

FLAGS = (
    "lr", "batch_size", "weight_decay", "l2", "label_smoothing", "ema", "cutout", "weighting",
    "epochs",
)  # fmt: skip


def early_exit_accuracy(model, x, y, budget: float) -> tuple[float, float]:
    """(accuracy, MACs fraction) on the second half of (x, y), calibrated on the first."""
    half = len(x) // 2
    predictor = EarlyExitPredictor(model)
    predictor.calibrate(x[:half], y[:half], budget)
    probs, exits = predictor.predict(x[half:])
    fraction = predictor.average_macs(exits) / float(predictor.exit_macs[-1])
    return float(np.mean(probs.argmax(axis=1) == y[half:])), fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="train --out folders")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    x, y = datasets.load_numpy(args.data_dir, "val")
    x = x.astype("float32")
    rows = []
    for run in map(Path, args.runs):
        if not (run / "eval.json").is_file():
            print(f"# {run}: no eval.json (not finished), left out")
            continue
        exits = json.loads((run / "eval.json").read_text())["exits"]
        settings = json.loads((run / "run.json").read_text())["args"]
        with open(run / "history.csv") as f:
            hours = sum(float(r.get("epoch_seconds") or 0) for r in csv.DictReader(f)) / 3600
        model = keras.saving.load_model(run / "model.keras", compile=False)
        ee, fraction = (
            early_exit_accuracy(model, x, y, args.budget) if len(exits) > 1 else (None, None)
        )
        rows.append(
            {
                "run": run.name,
                **{k: settings.get(k) for k in FLAGS},
                "val_first": exits[0]["accuracy"],
                "val_last": exits[-1]["accuracy"],
                "val_mean": float(np.mean([e["accuracy"] for e in exits])),
                "early_exit_accuracy": ee,
                "early_exit_macs_fraction": fraction,
                "hours": hours,
            }
        )
    print(
        "| run | weighting | lr | batch | wd | smoothing | EMA | cutout | epochs | val exit 1 | "
        f"val last | mean | early exit at {args.budget} | h |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ee = "-" if r["early_exit_accuracy"] is None else f"{100 * r['early_exit_accuracy']:.2f}"
        print(
            f"| {r['run']} | {r['weighting']} | {r['lr']} | {r['batch_size']} | "
            f"{r['weight_decay']} | {r['label_smoothing']} | {r['ema']} | {r['cutout']} | "
            f"{r['epochs']} | "
            f"{100 * r['val_first']:.2f} | {100 * r['val_last']:.2f} | "
            f"{100 * r['val_mean']:.2f} | {ee} | {r['hours']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
