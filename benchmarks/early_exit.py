"""Early-exit inference: accuracy against average MACs per image, and images/s.

Loads a model (a `.keras` file or a zoo preset name), calibrates an
`inference.EarlyExitPredictor` on the first half of the `val` split (records
45,000..47,499 of the local CIFAR-10 NumPy folder) for each budget and evaluates it on the
second half, next to the last exit alone. Then times the predictor (at `--timing-budget`)
against `model.predict` of the full network in the same run: at batch 256 on the second
half, and at batch 1 on its first `--single` images.

    python3 benchmarks/early_exit.py MODEL --data-dir ../shared/data/cifar10

MACs are those of one image (`keras_anytime.flops`); an image leaving at exit k costs
exits 1..k, their heads included. Prints a markdown table, then a JSON report (also
written to `--json`).
"""

from __future__ import annotations

import argparse
import json
import time

import keras
import numpy as np

from keras_anytime import datasets, zoo
from keras_anytime.flops import exit_flops
from keras_anytime.inference import EarlyExitPredictor


def images_per_second(run, x: np.ndarray, batch_size: int) -> float:
    """Images/s of the second of two passes of `run` over `x`: the first traces or
    compiles every shape that the timed pass meets (on JAX, one per stage and padded
    count of images in flight)."""
    run(x, batch_size)
    start = time.perf_counter()
    run(x, batch_size)
    return len(x) / (time.perf_counter() - start)


def shares(exits: np.ndarray, num_exits: int) -> list[float]:
    """Fraction of the images leaving at each exit, (K,)."""
    return (np.bincount(exits, minlength=num_exits + 1)[1:] / len(exits)).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file or a zoo preset name")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budgets", default="0.25,0.35,0.5,0.75,1.0")
    parser.add_argument("--timing-budget", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--single", type=int, default=300, help="images timed at batch 1")
    parser.add_argument("--limit", type=int, default=None, help="use the first N val images")
    parser.add_argument("--json", default=None, help="also write the JSON report here")
    args = parser.parse_args()

    model = zoo.load_model_or_preset(args.model)
    x, y = datasets.load_numpy(args.data_dir, "val")
    x, y = x[: args.limit].astype("float32"), y[: args.limit].astype("int64")
    half = len(x) // 2
    x_cal, y_cal, x_eval, y_eval = x[:half], y[:half], x[half:], y[half:]

    predictor = EarlyExitPredictor(model)
    full_macs = int(predictor.exit_macs[-1])
    last = predictor.predict_at(x_eval, predictor.num_exits, args.batch_size)
    last_only = {
        "macs": exit_flops(model)[-1],
        "accuracy": float(np.mean(last.argmax(axis=1) == y_eval)),
    }
    curve = []
    for budget in (float(b) for b in args.budgets.split(",")):
        fit = predictor.calibrate(x_cal, y_cal, budget, args.batch_size)
        probs, exits = predictor.predict(x_eval, args.batch_size)
        macs = predictor.average_macs(exits)
        curve.append(
            {
                "budget": budget,
                "calibration_macs_fraction": fit["macs_fraction"],
                "average_macs": macs,
                "macs_fraction": macs / full_macs,
                "accuracy": float(np.mean(probs.argmax(axis=1) == y_eval)),
                "exit_fractions": shares(exits, predictor.num_exits),
                "thresholds": fit["thresholds"],
            }
        )

    predictor.calibrate(x_cal, y_cal, args.timing_budget, args.batch_size)
    timing = {}
    for batch_size, xs in ((args.batch_size, x_eval), (1, x_eval[: args.single])):
        early = images_per_second(lambda a, b: predictor.predict(a, b), xs, batch_size)
        full = images_per_second(
            lambda a, b: model.predict(a, batch_size=b, verbose=0), xs, batch_size
        )
        timing[str(batch_size)] = {
            "images": len(xs),
            "early_exit_img_per_s": early,
            "model_predict_img_per_s": full,
            "speedup": early / full,
        }

    print(f"{model.name}: {predictor.num_exits} exits, full network {full_macs / 1e6:.2f} MMACs")
    print(f"calibration: {len(x_cal)} val images, evaluation: {len(x_eval)} val images\n")
    print("| budget | calibration MACs fraction | MMACs per image | MACs fraction | val acc % |")
    print("|---|---|---|---|---|")
    for row in curve:
        print(
            f"| {row['budget']:.2f} | {row['calibration_macs_fraction']:.3f} | "
            f"{row['average_macs'] / 1e6:.2f} | {row['macs_fraction']:.3f} | "
            f"{100 * row['accuracy']:.2f} |"
        )
    print(
        f"| last exit alone | — | {last_only['macs'] / 1e6:.2f} | "
        f"{last_only['macs'] / full_macs:.3f} | {100 * last_only['accuracy']:.2f} |\n"
    )
    print(f"Throughput at budget {args.timing_budget} (same run):\n")
    print("| batch | images | early exit (img/s) | model.predict (img/s) | speedup |")
    print("|---|---|---|---|---|")
    for batch, t in timing.items():
        print(
            f"| {batch} | {t['images']} | {t['early_exit_img_per_s']:.0f} | "
            f"{t['model_predict_img_per_s']:.0f} | {t['speedup']:.2f} |"
        )
    report = {
        "model": args.model,
        "keras": keras.__version__,
        "backend": keras.config.backend(),
        "exit_macs": predictor.exit_macs.tolist(),
        "calibration_images": len(x_cal),
        "evaluation_images": len(x_eval),
        "last_exit_alone": last_only,
        "curve": curve,
        "timing_budget": args.timing_budget,
        "timing": timing,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
