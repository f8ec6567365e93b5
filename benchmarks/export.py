"""Exported early exit: batch-1 latency of the SavedModel and LiteRT artifacts against the
same format's last-exit-only model, and their accuracy against the Python predictor.

For each budget (fractions of the last-exit-only network's MACs) the predictor is
calibrated on the first half of `val` (records 45,000..47,499 of the local CIFAR-10
folder), exported in both formats, and run one image at a time on `--images` images of
the second half (each called at the budget it was calibrated for, its table's only
entry); the last-exit-only model (the graph from the input to the last exit,
without the other heads) is exported the same way; all artifacts are timed in one run,
taking turns over `--rounds` passes (the median counts).

    python3 benchmarks/export.py MODEL --data-dir ../shared/data/cifar10

Both formats are exported for batch 1 (the early-exit graph then branches on the image's
confidence with static shapes), the SavedModel twice: XLA-compiled (the default at batch 1)
and not (`jit_compile=False`). SavedModels run through `tf.saved_model.load`, LiteRT
models through `ai_edge_litert`'s interpreter with its default (XNNPACK) delegate, twice:
with the interpreter's default threads and with one thread (the same file). Prints a
markdown table, then a JSON report (also written to `--json`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_anytime import datasets, zoo
from keras_anytime.flops import exit_flops
from keras_anytime.inference import EarlyExitPredictor
from keras_anytime.inference.export import export_model

# artifact name: (file name, format, jit_compile, LiteRT interpreter threads: None = default)
ARTIFACTS = {
    "saved_model_xla": ("saved_model_xla", "tf_saved_model", True, None),
    "saved_model": ("saved_model", "tf_saved_model", False, None),
    "litert": ("model.tflite", "litert", None, None),
    "litert_1thread": ("model.tflite", "litert", None, 1),
}
TITLES = {
    "saved_model_xla": "SavedModel, XLA",
    "saved_model": "SavedModel",
    "litert": "LiteRT",
    "litert_1thread": "LiteRT, 1 thread",
}


def exported(write, folder: Path, budget: float | None = None) -> dict:
    """Write each artifact file once with `write(path, format, batch_size, jit_compile)` (a
    predictor's `export` or `export_model` of a model); {artifact name: batch-1 runner},
    calling `serve(images, budget)`, or `serve(images)` with budget None (`export_model`)."""
    runners = {}
    for name, (file, format, jit_compile, threads) in ARTIFACTS.items():
        path = folder / file
        if not path.exists():
            write(path, format=format, batch_size=1, jit_compile=jit_compile)
        runners[name] = (
            litert_runner(path, threads, budget)
            if format == "litert"
            else saved_model_runner(path, budget)
        )
    return runners


def saved_model_runner(path: Path, budget: float | None):
    loaded = tf.saved_model.load(str(path))  # the closure keeps it (and its variables) alive
    args = () if budget is None else (tf.constant(budget, tf.float32),)
    return lambda image: {k: v.numpy() for k, v in loaded.serve(tf.constant(image), *args).items()}


def litert_runner(path: Path, threads: int | None, budget: float | None):
    serve = Interpreter(str(path), num_threads=threads).get_signature_runner("serve")
    kwargs = {} if budget is None else {"budget": np.float32(budget)}
    return lambda image: serve(images=image, **kwargs)


def batch_1(runners: dict, x: np.ndarray, rounds: int) -> tuple[dict, dict]:
    """Each runner's outputs on each image of `x` (a warm-up pass), then its median images/s
    over `rounds` passes, the runners taking turns each round so that they share any
    change in the machine's speed."""
    outputs = {name: [run(x[i : i + 1]) for i in range(len(x))] for name, run in runners.items()}
    speeds = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            for i in range(len(x)):
                run(x[i : i + 1])
            speeds[name].append(len(x) / (time.perf_counter() - start))
    return outputs, {name: float(np.median(v)) for name, v in speeds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file or a zoo preset name")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budgets", default="0.25,0.5,1.0", help="of the last exit's MACs")
    parser.add_argument("--images", type=int, default=1000, help="val images run at batch 1")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per artifact")
    parser.add_argument("--json", default=None, help="also write the JSON report here")
    args = parser.parse_args()

    model = zoo.load_model_or_preset(args.model)
    x, y = datasets.load_numpy(args.data_dir, "val")
    x, y = x.astype("float32"), y.astype("int64")
    half = len(x) // 2
    x_cal, y_cal = x[:half], y[:half]
    x_run, y_run = x[half : half + args.images], y[half : half + args.images]
    predictor = EarlyExitPredictor(model)
    last_macs = exit_flops(model)[-1]  # the last exit alone, without the other heads
    artifacts = tuple(ARTIFACTS)

    folder = Path(tempfile.mkdtemp(prefix="export_bench_"))
    # the graph from the input to the last exit, without the other heads
    last = keras.Model(model.inputs, model.outputs[-1])
    (folder / "last").mkdir()
    runners = {
        ("last", f): run
        for f, run in exported(partial(export_model, last), folder / "last").items()
    }
    rows, skipped = [], []
    for budget in (float(b) for b in args.budgets.split(",")):
        if budget * last_macs < predictor.exit_macs[0]:  # below exit 1 alone: no policy meets it
            skipped.append(budget)
            continue
        # the predictor's budget is a fraction of its own full cost, every head included
        fraction = budget * last_macs / predictor.exit_macs[-1]
        fit = predictor.calibrate(x_cal, y_cal, fraction)
        probs, exits = predictor.predict(x_run)
        rows.append(
            {
                "budget": budget,
                "average_macs": predictor.average_macs(exits),
                "python_accuracy": float(np.mean(probs.argmax(axis=1) == y_run)),
                "thresholds": fit["thresholds"],
                "python_exits": exits,
            }
        )
        (folder / f"early_{budget}").mkdir()
        for f, run in exported(predictor.export, folder / f"early_{budget}", fraction).items():
            runners[budget, f] = run

    outputs, speeds = batch_1(runners, x_run, args.rounds)

    def accuracy(key) -> float:
        predicted = np.concatenate([o["probabilities"] for o in outputs[key]]).argmax(axis=1)
        return float(np.mean(predicted == y_run))

    baseline = {
        f: {"img_per_s": speeds["last", f], "accuracy": accuracy(("last", f))} for f in artifacts
    }
    for row in rows:
        exits = row.pop("python_exits")
        for f in artifacts:
            key = (row["budget"], f)
            got = np.array([int(o["exit"][0]) for o in outputs[key]])
            row[f] = {
                "img_per_s": speeds[key],
                "speedup": speeds[key] / baseline[f]["img_per_s"],
                "accuracy": accuracy(key),
                "exits_equal_python": float(np.mean(got == exits)),
            }

    print(f"{model.name}: last exit alone {last_macs / 1e6:.2f} MMACs, {len(x_run)} val images")
    print(f"({half} calibration images), batch 1\n")
    header = "".join(f" {TITLES[f]} img/s | speedup | val acc % |" for f in artifacts)
    print(f"| model | MACs fraction | val acc % (Python) |{header}")
    print("|---|---|---|" + "---|---|---|" * len(artifacts))
    cells = "".join(
        f" {baseline[f]['img_per_s']:.0f} | 1.00 | {100 * baseline[f]['accuracy']:.2f} |"
        for f in artifacts
    )
    print(f"| last exit only | 1.000 | — |{cells}")
    for r in rows:
        cells = "".join(
            f" {r[f]['img_per_s']:.0f} | {r[f]['speedup']:.2f} | {100 * r[f]['accuracy']:.2f} |"
            for f in artifacts
        )
        print(
            f"| early exit, budget {r['budget']} | {r['average_macs'] / last_macs:.3f} | "
            f"{100 * r['python_accuracy']:.2f} |{cells}"
        )
    if skipped:
        print(
            f"\nSkipped budgets {skipped}: below exit 1 alone "
            f"({predictor.exit_macs[0] / last_macs:.3f} of the last exit's MACs)."
        )
    report = {
        "skipped_budgets": skipped,
        "model": args.model,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "last_exit_macs": last_macs,
        "images": len(x_run),
        "rounds": args.rounds,
        "last_exit_only": baseline,
        "early_exit": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
