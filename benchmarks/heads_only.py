"""Exits on a trained single-exit network, heads only (Shallow-Deep Networks, Kaya et al.,
ICML 2019), against the network of the same backbone trained with AdaLoss end to end.

Loads a trained single-exit network (a `keras-anytime train --weighting opt` run's
`model.keras`), cuts it at `--features` (the map its last head reads), attaches an exit
after every residual block with `keras_anytime.attach_exits(..., freeze_backbone=True)`,
trains only the heads on `train` (records 0..44,999, augmented) and reports every exit's
`val` accuracy (records 45,000..49,999) and MACs next to `--compare`'s.

    python3 benchmarks/heads_only.py runs/resnet20-opt/model.keras --compare resnet20_cifar10 \\
        --data-dir ../shared/data/cifar10

Prints a markdown table and a JSON report (also to `--json`); `--plot` writes the anytime
curves (accuracy against MACs) to a PNG.
"""

from __future__ import annotations

import argparse
import json

import keras

import keras_anytime
from keras_anytime import datasets, hardware, recipes, zoo
from keras_anytime.evaluation import evaluate_exits, plot_anytime_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the trained single-exit network (.keras)")
    parser.add_argument("--compare", required=True, help="AdaLoss network: preset or .keras")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--features", default="stage3_unit3_add", help="backbone output layer")
    parser.add_argument("--every", type=int, default=1, help="an exit every N residual blocks")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.2, help="peak, per 128 images")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    hardware.set_mixed_precision(hardware.resolve_precision("auto") == "bfloat16")
    trained = keras.saving.load_model(args.model, compile=False)
    backbone = keras.Model(trained.inputs, trained.get_layer(args.features).output)
    model = keras_anytime.attach_exits(backbone, every=args.every, freeze_backbone=True)
    train = datasets.load("cifar10", "train", args.data_dir, 128, augment=True, shuffle=True)
    val = datasets.load("cifar10", "val", args.data_dir, 256)
    steps = args.steps_per_epoch or len(train)
    model.compile(
        recipes.optimizer("fast", args.epochs, steps, 128, args.lr, weight_decay=5e-4),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=2)
    keras.mixed_precision.set_global_policy("float32")

    curves = {
        "heads only on the single-exit network": evaluate_exits(model, val),
        f"{args.compare} (AdaLoss, end to end)": evaluate_exits(
            zoo.load_model_or_preset(args.compare), val
        ),
    }
    print("| network | exit | MMACs | val acc % |")
    print("|---|---|---|---|")
    for label, rows in curves.items():
        for r in rows:
            print(f"| {label} | {r['exit']} | {r['macs'] / 1e6:.2f} | {100 * r['accuracy']:.2f} |")
    if args.plot:
        plot_anytime_curves(curves, args.plot, "val")
    report = {"model": args.model, "compare": args.compare, "epochs": args.epochs, **curves}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
