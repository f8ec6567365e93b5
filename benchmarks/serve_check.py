"""An exported budget-table model, run by processes that import only TensorFlow (or only
the LiteRT interpreter), against the Python predictor, image by image.

The zoo model is calibrated on val 45,000..47,499 at `--budgets`, exported once as a
SavedModel (any batch) and as a LiteRT model, and its `predict(x, budget=b)` exits on the
first `--images` images of val 47,500.. are written beside them. A child process that
imports TensorFlow and NumPy alone then loads the SavedModel and calls it at two budgets
(`--calls`) in one run; another loads the LiteRT model with `ai_edge_litert` alone and
calls it one image at a time. Each reports, per call, how many images left at the
predictor's exit, the average MACs fraction of their exits, and which keras_anytime modules
it imported (none).

    python3 benchmarks/serve_check.py msdnet_cifar10 --data-dir ../shared/data/cifar10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys
import numpy as np
folder, form, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = np.load(f"{folder}/held.npz")
x, macs = data["x"], data["fractions"]
if form == "tf_saved_model":
    import tensorflow as tf
    served = tf.saved_model.load(f"{folder}/served")
    def run(budget):
        out = served.serve(tf.constant(x), tf.constant(budget, tf.float32))
        return out["exit"].numpy(), float(out["budget"].numpy())
else:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=f"{folder}/served.tflite")
    runner = interpreter.get_signature_runner("serve")
    def run(budget):
        outs = [runner(images=x[i : i + 1], budget=np.float32(budget)) for i in range(len(x))]
        return np.concatenate([o["exit"] for o in outs]), float(outs[0]["budget"])
report = []
for budget in calls:
    exits, served_budget = run(budget)
    # the calibrated budget the artifact served, as float32 carries it
    expected = data["exits"][np.argmin(np.abs(data["budgets"] - served_budget))]
    report.append({
        "requested": budget, "served": served_budget,
        "equal": int((exits == expected).sum()), "images": len(x),
        "macs_fraction": float(macs[exits - 1].mean()),
    })
package = sorted(m for m in sys.modules if m.split(".")[0] == "keras_anytime")
print(json.dumps({"form": form, "calls": report, "keras_anytime_modules": package}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a zoo preset name")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budgets", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--calls", default="0.35,0.8", help="the two budgets the child calls")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()

    from keras_anytime import datasets, zoo
    from keras_anytime.inference import EarlyExitPredictor

    x, y = datasets.load_numpy(args.data_dir, "val")
    half = len(x) // 2
    predictor = EarlyExitPredictor(zoo.load(args.model))
    budgets = [float(b) for b in args.budgets.split(",")]
    fits = predictor.calibrate(x[:half].astype("float32"), y[:half], budget=budgets)
    held = x[half : half + args.images].astype("float32")
    fractions = np.array(predictor.exit_macs) / predictor.exit_macs[-1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        predictor.export(folder / "served", format="tf_saved_model")
        predictor.export(folder / "served.tflite", format="litert", batch_size=1)
        exits = np.stack([predictor.predict(held, budget=b)[1] for b in budgets])
        np.savez(folder / "held.npz", x=held, fractions=fractions, budgets=budgets, exits=exits)
        table = [
            {"budget": b, "macs_fraction": float(f["macs_fraction"]), "accuracy": f["accuracy"]}
            for b, f in zip(budgets, fits)
        ]
        print(json.dumps({"model": args.model, "calibration": table}, default=float))
        for form in ("tf_saved_model", "litert"):
            calls = json.dumps([float(b) for b in args.calls.split(",")])
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(folder), form, calls],
                capture_output=True,
                text=True,
            )
            if child.returncode:
                raise RuntimeError(f"The {form} child failed:\n{child.stderr[-3000:]}")
            print(child.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
