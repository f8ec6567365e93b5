"""Exported early exit: batch-1 latency of the SavedModel and LiteRT artifacts against the
same format's last-exit-only model, and their accuracy against the Python predictor.

For each budget (fractions of the last-exit-only network's MACs) the predictor is
calibrated on the first half of `val` (records 45,000..47,499 of the local CIFAR-10
folder), exported in both formats, and run one image at a time on `--images` images of
the second half; the last-exit-only model (the graph from the input to the last exit,
without the other heads) is exported and timed the same way, in the same run.

    python3 benchmarks/export.py MODEL --data-dir ../shared/data/cifar10

Both formats are exported for batch 1 (the early-exit graph then branches on the image's
confidence with static shapes); SavedModels run through `tf.saved_model.load`, LiteRT
models through `ai_edge_litert`'s interpreter with its default (XNNPACK) delegate. Prints
a markdown table, then a JSON report (also written to `--json`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from keras_anytime import datasets, zoo
from keras_anytime.flops import exit_flops
from keras_anytime.inference import EarlyExitPredictor


def export_last_exit(model: keras.Model, folder: Path) -> tuple[Path, Path]:
    """The last-exit-only network as a SavedModel folder and a `.tflite` file, with the
    same endpoint name, signature and converter settings as the early-exit export."""
    last = keras.Model(model.inputs, model.outputs[-1])
    archive = keras.export.ExportArchive()
    archive.track(last)
    shape = (1, *model.inputs[0].shape[1:])
    archive.add_endpoint(
        "serve",
        lambda images: {"probabilities": last(images, training=False)},
        input_signature=[tf.TensorSpec(shape, model.inputs[0].dtype, name="images")],
    )
    saved = folder / "last_exit"
    archive.write_out(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved), signature_keys=["serve"])
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    lite = folder / "last_exit.tflite"
    lite.write_bytes(converter.convert())
    return saved, lite


def saved_model_runner(path: Path):
    loaded = tf.saved_model.load(str(path))  # the closure keeps it (and its variables) alive
    return lambda image: {k: v.numpy() for k, v in loaded.serve(tf.constant(image)).items()}


def litert_runner(path: Path):
    serve = Interpreter(str(path)).get_signature_runner("serve")
    return lambda image: serve(images=image)


def batch_1(run, x: np.ndarray) -> tuple[list[dict], float]:
    """The outputs of `run` on each image of `x`, and its images/s on the second of two
    passes."""
    outputs = [run(x[i : i + 1]) for i in range(len(x))]
    start = time.perf_counter()
    for i in range(len(x)):
        run(x[i : i + 1])
    return outputs, len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .keras file or a zoo preset name")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budgets", default="0.25,0.5,1.0", help="of the last exit's MACs")
    parser.add_argument("--images", type=int, default=1000, help="val images run at batch 1")
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

    folder = Path(tempfile.mkdtemp(prefix="export_bench_"))
    saved, lite = export_last_exit(model, folder)
    baseline = {}
    for name, run in (
        ("tf_saved_model", saved_model_runner(saved)),
        ("litert", litert_runner(lite)),
    ):
        outputs, speed = batch_1(run, x_run)
        predicted = np.concatenate([o["probabilities"] for o in outputs]).argmax(axis=1)
        baseline[name] = {"img_per_s": speed, "accuracy": float(np.mean(predicted == y_run))}

    rows, skipped = [], []
    for budget in (float(b) for b in args.budgets.split(",")):
        if budget * last_macs < predictor.exit_macs[0]:  # below exit 1 alone: no policy meets it
            skipped.append(budget)
            continue
        # the predictor's budget is a fraction of its own full cost, every head included
        fit = predictor.calibrate(x_cal, y_cal, budget * last_macs / predictor.exit_macs[-1])
        probs, exits = predictor.predict(x_run)
        row = {
            "budget": budget,
            "average_macs": predictor.average_macs(exits),
            "python_accuracy": float(np.mean(probs.argmax(axis=1) == y_run)),
            "thresholds": fit["thresholds"],
        }
        predictor.export(folder / f"early_{budget}", batch_size=1)
        predictor.export(folder / f"early_{budget}.tflite", format="litert")
        for name, run in (
            ("tf_saved_model", saved_model_runner(folder / f"early_{budget}")),
            ("litert", litert_runner(folder / f"early_{budget}.tflite")),
        ):
            outputs, speed = batch_1(run, x_run)
            got = np.array([int(o["exit"][0]) for o in outputs])
            predicted = np.concatenate([o["probabilities"] for o in outputs]).argmax(axis=1)
            row[name] = {
                "img_per_s": speed,
                "speedup": speed / baseline[name]["img_per_s"],
                "accuracy": float(np.mean(predicted == y_run)),
                "exits_equal_python": float(np.mean(got == exits)),
            }
        rows.append(row)

    print(f"{model.name}: last exit alone {last_macs / 1e6:.2f} MMACs, {len(x_run)} val images")
    print(f"({half} calibration images), batch 1\n")
    print("| model | MACs fraction | val acc % (Python) | SavedModel img/s | speedup | val acc % "
          "| LiteRT img/s | speedup | val acc % |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| last exit only | 1.000 | — | {baseline['tf_saved_model']['img_per_s']:.0f} | 1.00 | "
        f"{100 * baseline['tf_saved_model']['accuracy']:.2f} | "
        f"{baseline['litert']['img_per_s']:.0f} | 1.00 | "
        f"{100 * baseline['litert']['accuracy']:.2f} |"
    )
    for r in rows:
        s, t = r["tf_saved_model"], r["litert"]
        print(
            f"| early exit, budget {r['budget']} | {r['average_macs'] / last_macs:.3f} | "
            f"{100 * r['python_accuracy']:.2f} | {s['img_per_s']:.0f} | {s['speedup']:.2f} | "
            f"{100 * s['accuracy']:.2f} | {t['img_per_s']:.0f} | {t['speedup']:.2f} | "
            f"{100 * t['accuracy']:.2f} |"
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
        "last_exit_only": baseline,
        "early_exit": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
