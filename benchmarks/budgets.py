"""One exported early-exit model for every budget: accuracy, average MACs and images/s of
the budget-table artifacts (`serve(images, budget)`) against one artifact per budget.

For each model the predictor is calibrated on the first half of `val` (records
45,000..47,499 of the local CIFAR-10 folder) at every budget of `--budgets` (fractions of
the full network's MACs, every exit's head included, as `calibrate` and the artifacts take
them) and exported once with the whole table, in three forms: the SavedModel at batch 1
(XLA-compiled, the default there) and the LiteRT model, both called one image at a time,
and the any-batch SavedModel, called at batch 256. For each budget of `--compare`, the
predictor is also exported with that budget's thresholds alone (as `thresholds`: one
entry, the thresholds graph constants, as an export for one budget writes them): the
one-budget artifacts.

Accuracy and average MACs per image: the table SavedModel at batch 256, called at each
budget on the first `--images` images of the second half of `val` (records 47,500..),
its exits compared with the Python predictor's `predict(x, budget=b)` there. Images/s:
`--rounds` timed passes (the median counts) over the first `--timed` of those images at
batch 256 and the first `--single` at batch 1, after one warm-up call of each artifact
(XLA compiles then); in each round, for each form and budget, the table artifact and the
one-budget artifact run back to back, their order alternating, so that both meet the same
load; their ratio is the median over the rounds of each round's ratio, in wall-clock time
and in this process's CPU time (which other processes on the machine disturb less). The
first round's outputs of the two are compared image by image.

    python3 benchmarks/budgets.py msdnet_cifar10 resnet20_cifar10 \\
        --data-dir ../shared/data/cifar10 --png benchmarks/budgets.png

Prints two markdown tables per model, then a JSON report (also written to `--json`).
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
from keras_anytime.inference import EarlyExitPredictor

# artifact: (export format, export batch size, call batch size)
ARTIFACTS = {
    "saved_model_1": ("tf_saved_model", 1, 1),
    "litert_1": ("litert", 1, 1),
    "saved_model_256": ("tf_saved_model", None, 256),
}
TITLES = {
    "saved_model_1": "SavedModel (XLA), batch 1",
    "litert_1": "LiteRT, batch 1",
    "saved_model_256": "SavedModel, batch 256",
}
KINDS = ("table", "one_budget")


def export_all(predictor: EarlyExitPredictor, folder: Path) -> dict:
    """Export `predictor` in every form of ARTIFACTS under `folder`; {artifact: caller},
    a caller being fn(images, budget) -> {"probabilities", "exit", "budget"} (NumPy)."""
    folder.mkdir(parents=True)
    callers = {}
    for name, (format, batch_size, _) in ARTIFACTS.items():
        path = folder / (f"{name}.tflite" if format == "litert" else name)
        predictor.export(path, format=format, batch_size=batch_size)
        callers[name] = litert_caller(path) if format == "litert" else saved_model_caller(path)
    return callers


def saved_model_caller(path: Path):
    loaded = tf.saved_model.load(str(path))  # the closure keeps it (and its graph) alive

    def call(images, budget):
        out = loaded.serve(tf.constant(images), tf.constant(budget, tf.float32))
        return {key: value.numpy() for key, value in out.items()}

    return call


def litert_caller(path: Path):
    serve = Interpreter(str(path)).get_signature_runner("serve")
    return lambda images, budget: serve(images=images, budget=np.float32(budget))


def one_pass(call, x: np.ndarray, batch: int, budget: float) -> dict:
    """`call` over `x` in batches of `batch` at `budget`: the exits, the probabilities, the
    budgets served (a set), and the wall-clock and CPU seconds it took (CPU: this process's
    threads together, which other processes on the machine disturb less)."""
    wall, cpu = time.perf_counter(), time.process_time()
    outs = [call(x[i : i + batch], budget) for i in range(0, len(x), batch)]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "exit": np.concatenate([o["exit"] for o in outs]),
        "probabilities": np.concatenate([o["probabilities"] for o in outs]),
        "served": {float(o["budget"]) for o in outs},
        "seconds": wall,
        "cpu_seconds": cpu,
    }


def timed(callers: dict, inputs: dict, budgets: list, compare: list, rounds: int) -> tuple:
    """({(budget, artifact, kind): every round's pass}, {the same key: the first round's
    outputs}), kind "table" or "one_budget", the two kinds of one artifact and budget back
    to back in each round, in alternating order."""
    for kind_callers in callers.values():
        for name, (_, _, batch) in ARTIFACTS.items():
            kind_callers[name](inputs[name][:batch], budgets[0])  # warm-up: XLA compiles
    seconds, first = {}, {}
    for round in range(rounds):
        for name, (_, _, batch) in ARTIFACTS.items():
            for i, b in enumerate(budgets):
                kinds = ["table"] + (["one_budget"] if b in compare else [])
                for kind in kinds if (round + i) % 2 == 0 else kinds[::-1]:
                    out = one_pass(
                        callers[b if kind == "one_budget" else kind][name], inputs[name], batch, b
                    )
                    seconds.setdefault((b, name, kind), []).append(out)
                    first.setdefault((b, name, kind), out)
    return seconds, first


def measure(model_name: str, args, x_cal, y_cal, x_held, y_held) -> dict:
    """The report of one model (see the module docstring)."""
    predictor = EarlyExitPredictor(zoo.load_model_or_preset(model_name))
    budgets = [float(b) for b in args.budgets.split(",")]
    compare = [float(b) for b in args.compare.split(",")] if args.compare else budgets
    folder = Path(tempfile.mkdtemp(prefix="budgets_bench_"))
    fits = predictor.calibrate(x_cal, y_cal, budgets)
    table = {e["budget"]: e["thresholds"] for e in predictor.budget_table}
    x, y = x_held[: args.images], y_held[: args.images]
    python = {b: predictor.predict(x, budget=b)[1] for b in budgets}
    callers = {"table": export_all(predictor, folder / "table")}
    for b in compare:
        predictor.thresholds = table[b]
        callers[b] = export_all(predictor, folder / f"budget_{b}")

    accuracy_pass = {b: one_pass(callers["table"]["saved_model_256"], x, 256, b) for b in budgets}
    inputs = {
        name: x[: args.single if batch == 1 else args.timed]
        for name, (_, _, batch) in ARTIFACTS.items()
    }
    seconds, first = timed(callers, inputs, budgets, compare, args.rounds)

    full = float(predictor.exit_macs[-1])
    rows = []
    for b, fit in zip(budgets, fits):
        out = accuracy_pass[b]
        row = {
            "budget": b,
            "served": sorted(out["served"]),
            "thresholds": fit["thresholds"],
            "calibration_macs_fraction": fit["macs_fraction"],
            "calibration_accuracy": fit["accuracy"],
            "accuracy": float(np.mean(out["probabilities"].argmax(axis=1) == y)),
            "macs_fraction": predictor.average_macs(out["exit"]) / full,
            "exits_equal_python": int(np.sum(out["exit"] == python[b])),
        }
        for name in ARTIFACTS:
            n = len(inputs[name])
            got = first[b, name, "table"]
            passes = seconds[b, name, "table"]
            row[name] = {
                "img_per_s": n / np.median([p["seconds"] for p in passes]),
                "served": sorted(got["served"]),
                "exits_equal_python": int(np.sum(got["exit"] == python[b][:n])),
            }
            if b in compare:
                alone = first[b, name, "one_budget"]
                pairs = list(zip(seconds[b, name, "one_budget"], passes))
                row[name] |= {
                    "one_budget_img_per_s": n
                    / np.median([p["seconds"] for p in seconds[b, name, "one_budget"]]),
                    # table / one-budget images/s: the median of the rounds' ratios, each of
                    # two passes back to back
                    "speed_ratio": float(
                        np.median([o["seconds"] / t["seconds"] for o, t in pairs])
                    ),
                    "cpu_ratio": float(
                        np.median([o["cpu_seconds"] / t["cpu_seconds"] for o, t in pairs])
                    ),
                    "exits_equal_one_budget": int(np.sum(got["exit"] == alone["exit"])),
                    "max_probability_difference": float(
                        np.abs(got["probabilities"] - alone["probabilities"]).max()
                    ),
                }
        rows.append(row)
    return {
        "model": model_name,
        "exit_macs": predictor.exit_macs.tolist(),
        "exit_1_fraction": float(predictor.exit_macs[0] / full),
        "calibration_images": len(x_cal),
        "images": len(x),
        "timed_images": {name: len(v) for name, v in inputs.items()},
        "rounds": args.rounds,
        "rows": rows,
    }


def print_tables(report: dict) -> None:
    n, timed_n = report["images"], report["timed_images"]
    print(
        f"\n{report['model']}: {report['calibration_images']} calibration images, {n} "
        f"held-out val images; images/s over {timed_n}, median of {report['rounds']}\n"
    )
    speeds = "".join(f" {TITLES[a]} img/s |" for a in ARTIFACTS)
    print(
        f"| budget | served | MACs fraction (calibration) | MACs fraction (val) | val acc % "
        f"| exits = Python |{speeds}"
    )
    print("|---|---|---|---|---|---|" + "---|" * len(ARTIFACTS))
    for r in report["rows"]:
        equal = f"{r['exits_equal_python']}/{n}" + "".join(
            f", {r[a]['exits_equal_python']}/{timed_n[a]}" for a in ARTIFACTS
        )
        cells = "".join(f" {r[a]['img_per_s']:.0f} |" for a in ARTIFACTS)
        print(
            f"| {r['budget']:.1f} | {', '.join(f'{b:.3g}' for b in r['served'])} | "
            f"{r['calibration_macs_fraction']:.3f} | "
            f"{r['macs_fraction']:.3f} | {100 * r['accuracy']:.2f} | {equal} |{cells}"
        )
    print(
        "\n| budget | artifact | table img/s | one-budget img/s | ratio (wall) | ratio (CPU) | "
        "same exits | max prob. difference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        for a in ARTIFACTS:
            if "speed_ratio" in r[a]:
                c = r[a]
                print(
                    f"| {r['budget']:.1f} | {TITLES[a]} | {c['img_per_s']:.0f} | "
                    f"{c['one_budget_img_per_s']:.0f} | {c['speed_ratio']:.3f} | "
                    f"{c['cpu_ratio']:.3f} | "
                    f"{c['exits_equal_one_budget']}/{timed_n[a]} | "
                    f"{c['max_probability_difference']:.1e} |"
                )


def plot(reports: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, macs, speed) = plt.subplots(1, 3, figsize=(15, 4))
    for report in reports:
        rows = report["rows"]
        budgets = [r["budget"] for r in rows]
        acc.plot(budgets, [100 * r["accuracy"] for r in rows], "o-", label=report["model"])
        macs.plot(budgets, [r["macs_fraction"] for r in rows], "o-", label=report["model"])
        for a, style in zip(ARTIFACTS, ("o-", "x--", "s:")):
            compared = [r for r in rows if "speed_ratio" in r[a]]
            speed.plot(
                [r["budget"] for r in compared],
                [r[a]["cpu_ratio"] for r in compared],
                style,
                label=f"{report['model']}, {TITLES[a]}",
            )
    macs.plot([0.3, 1.0], [0.3, 1.0], color="gray", lw=0.8, label="= budget")
    acc.set(
        xlabel="requested budget (fraction of the full network's MACs)",
        ylabel="val accuracy % (held-out half)",
    )
    macs.set(xlabel="requested budget", ylabel="average MACs per image (fraction), held-out val")
    speed.axhline(1.0, color="gray", lw=0.8)
    speed.set(xlabel="requested budget", ylabel="table / one-budget, images per CPU second")
    for ax in (acc, macs, speed):
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".keras files or zoo preset names")
    parser.add_argument("--data-dir", required=True, help="local CIFAR-10 NumPy folder")
    parser.add_argument("--budgets", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("--compare", default=None, help="budgets with a one-budget artifact")
    parser.add_argument("--images", type=int, default=1000, help="held-out images, batch 256")
    parser.add_argument("--timed", type=int, default=256, help="of them, timed at batch 256")
    parser.add_argument("--single", type=int, default=64, help="of them, timed at batch 1")
    parser.add_argument("--rounds", type=int, default=4, help="timed passes per artifact")
    parser.add_argument("--png", default=None, help="write the figure here")
    parser.add_argument("--json", default=None, help="also write the JSON report here")
    args = parser.parse_args()

    x, y = datasets.load_numpy(args.data_dir, "val")
    x, y = x.astype("float32"), y.astype("int64")
    half = len(x) // 2
    reports = [measure(m, args, x[:half], y[:half], x[half:], y[half:]) for m in args.models]
    for report in reports:
        print_tables(report)
    if args.png:
        plot(reports, args.png)
    text = json.dumps(
        {"keras": keras.__version__, "tensorflow": tf.__version__, "models": reports}, indent=2
    )
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
