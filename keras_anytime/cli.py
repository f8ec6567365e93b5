"""The `keras-anytime` command: `train`, `eval` and `zoo list`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

FAMILIES = ("resnet", "densenet", "msdnet")  # registry.FAMILIES that `train` configures
WEIGHTINGS = ("adaloss", "const", "linear", "half_end", "sieve", "opt")

TRAIN_EXAMPLE = """example:
  keras-anytime train --family resnet --depth 20 --weighting adaloss --epochs 2 \\
      --data cifar10 --data-dir ../shared/data/cifar10 --out runs/resnet20-adaloss

Writes OUT/history.csv (per-exit metrics and AdaLoss weights per epoch), OUT/backup/ (a
checkpoint every epoch; rerunning the same command resumes from it), OUT/best.weights.h5
(best val accuracy at the last exit), OUT/model.keras and OUT/eval.json (per-exit val).
"""
EVAL_EXAMPLE = """examples:
  keras-anytime eval runs/resnet20-adaloss/model.keras --data-dir ../shared/data/cifar10
  keras-anytime eval resnet32_cifar10 --split val --out eval/

Prints each exit's cumulative MACs, accuracy and loss; writes OUT/anytime_curve.png and
OUT/eval.json.
"""
ZOO_EXAMPLE = """examples:
  keras-anytime zoo list
  keras-anytime zoo add runs/zoo-resnet20 --name resnet20_cifar10 --data-dir ../shared/data/cifar10
"""


def build_model(args):
    """The model that `train` trains: the family's builder with the command line's
    configuration; for `--weighting opt`, only the network up to exit `--opt-at`."""
    from keras_anytime.models import truncate

    model = _build_family(args)
    if getattr(args, "weighting", None) == "opt":  # a single-exit network: nothing past it runs
        model = truncate(model, model.num_exits if args.opt_at == -1 else args.opt_at)
    return model


def _build_family(args):
    from keras_anytime import registry

    common = {"classes": args.classes, "weights": getattr(args, "weights", None)}
    build = registry.builder(args.family)
    if args.family == "resnet":
        return build(depth=args.depth or 20, width=args.width, exit_every=args.exit_every, **common)
    if args.family == "densenet":
        return build(
            depth=args.depth or 100,
            growth_rate=args.growth_rate,
            exit_every=args.exit_every,
            **common,
        )
    from keras_anytime.applications.msdnet import MSDNET_CONFIGS

    config = dict(MSDNET_CONFIGS[args.msdnet_config])
    if args.n_blocks:
        config["n_blocks"] = args.n_blocks
    return build(**config, **common)


def loss_weights(args, num_exits: int) -> list[float]:
    from keras_anytime import weighting

    if args.weighting in ("adaloss", "const"):
        return weighting.const(num_exits)
    if args.weighting == "opt":  # the model is truncated at the chosen exit
        return weighting.opt(num_exits, -1)
    return weighting.SCHEMES[args.weighting](num_exits)


def _strategy(name: str):
    """The tf.distribute strategy named `name`; for "none", None (no strategy scope)."""
    if name == "none":
        return None
    import keras

    if keras.config.backend() != "tensorflow":
        raise SystemExit(
            f"--strategy {name} uses tf.distribute: run with KERAS_BACKEND=tensorflow, or "
            "use --strategy none."
        )
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SystemExit("--strategy multiworker needs TF_CONFIG (cluster and task) set.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise SystemExit(f"Unknown strategy {name!r}: use none, mirrored or multiworker.")


def _best_so_far(history: Path, key: str) -> float | None:
    if not history.is_file():
        return None
    with open(history) as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return max(values) if values else None


def _epoch_timer():
    """A callback that logs each epoch's wall time as `epoch_seconds` (into history.csv)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs["epoch_seconds"] = time.time() - self.start

    return EpochTimer()


def _progress_bar(num_exits: int):
    """Keras's progress bar showing only the loss and the first and last exits' accuracy
    (and their val figures): with every exit's loss, accuracy and AdaLoss weight, a line
    held 27 figures and wrapped. history.csv still records every figure."""
    import keras

    shown = {"loss", "exit_1_accuracy", f"exit_{num_exits}_accuracy"}
    shown |= {f"val_{key}" for key in shown}

    class ExitProgbar(keras.callbacks.ProgbarLogger):
        @staticmethod
        def _shown(logs):
            return {k: v for k, v in (logs or {}).items() if k in shown}

        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, self._shown(logs))

        def on_test_batch_end(self, batch, logs=None):
            super().on_test_batch_end(batch, self._shown(logs))

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, self._shown(logs))

        def on_test_end(self, logs=None):
            super().on_test_end(self._shown(logs))

    return ExitProgbar()


def _stop_on_nan(out: Path):
    """A callback that ends training with a clear error at the first batch whose training
    loss is NaN or infinite (as `keras.callbacks.TerminateOnNaN` checks). OUT/backup keeps
    the last finished epoch."""
    import keras

    class StopOnNaN(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise SystemExit(
                    f"The training loss became {float(loss)} at batch {batch + 1} of epoch "
                    f"{self.epoch + 1}: training diverged. {out / 'backup'} still holds the "
                    "last finished epoch. Rerun the same command with a lower --lr to resume "
                    "from it, or delete that folder to start again."
                )

    return StopOnNaN()


def _starts_from(args, model, out: Path) -> dict | None:
    """Where the run's initial weights came from: for `--weights cifar10`, the preset's
    name, sha256 and training record (its own `starts_from` included), so that a preset
    trained in stages keeps every stage; for a file, its path and sha256; None from scratch.
    A resumed run keeps what its first start recorded: the preset may have been replaced
    since, by this very run."""
    from keras_anytime import zoo

    recorded = out / "run.json"
    if (out / "backup").is_dir() and recorded.is_file():
        previous = json.loads(recorded.read_text())
        if "starts_from" in previous:
            return previous["starts_from"]
    if not args.weights:
        return None
    if args.weights not in zoo.PRESET_WEIGHTS:
        return {"file": str(Path(args.weights).resolve()), "sha256": zoo.sha256(args.weights)}
    # a --weighting opt model is cut off and has no builder_config; its family's has one
    builder_config = (
        model.builder_config
        or _build_family(argparse.Namespace(**{**vars(args), "weights": None})).builder_config
    )
    preset = zoo.find_preset(*builder_config, args.weights)
    record = ("name", "sha256", "command", "epochs_completed", "wall_time_hours", "hardware")
    return {
        **{key: preset[key] for key in record},
        "val_accuracy_last_exit": preset["val_accuracy"][-1],
        "starts_from": preset.get("starts_from"),
    }


def _eval_batches(name: str, split: str, data_dir, batch_size: int):
    """Unshuffled, unaugmented batches of a split: `datasets.load` on TensorFlow, else
    `datasets.NumpyBatches` over a local NumPy folder (tensorflow-datasets needs TF)."""
    import keras

    from keras_anytime import datasets

    if keras.config.backend() == "tensorflow":
        return datasets.load(name, split, data_dir, batch_size)
    folder = datasets.local_dir(data_dir)
    if folder is None:
        raise SystemExit(
            f"On the {keras.config.backend()} backend the data come from a local NumPy folder: "
            f"set --data-dir or {datasets.ENV_VAR} (tensorflow-datasets needs TensorFlow)."
        )
    return datasets.NumpyBatches(*datasets.load_numpy(folder, split, name), batch_size)


def _train_and_val(args):
    """The training batches (shuffled, augmented) and the val batches (256). On TensorFlow,
    `datasets.load`'s tf.data pipelines; on other backends, `datasets.NumpyBatches` over a
    local NumPy folder (tfds needs TensorFlow)."""
    import keras

    from keras_anytime import datasets

    if keras.config.backend() == "tensorflow":
        train = datasets.load(
            args.data,
            args.train_split,
            args.data_dir,
            args.batch_size,
            seed=args.seed,
            cutout=args.cutout,
        )
        val = datasets.load(args.data, args.val_split, args.data_dir, 256)
        return train, val
    folder = datasets.local_dir(args.data_dir)
    if folder is None:
        raise SystemExit(
            f"On the {keras.config.backend()} backend, train reads a local NumPy folder: set "
            f"--data-dir or {datasets.ENV_VAR} (tensorflow-datasets needs TensorFlow)."
        )
    x, y = datasets.load_numpy(folder, args.train_split, args.data)
    train = datasets.NumpyBatches(
        x, y, args.batch_size, augment=True, shuffle=True, seed=args.seed, cutout=args.cutout
    )
    val = datasets.load_numpy(folder, args.val_split, args.data)
    return train, datasets.NumpyBatches(*val, 256)


def train(args) -> int:
    """`keras-anytime train`; the global dtype policy is restored when it returns."""
    import keras

    policy = keras.mixed_precision.global_policy()
    try:
        return _train(args)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _train(args) -> int:
    import keras

    from keras_anytime import recipes
    from keras_anytime.callbacks import AdaLoss
    from keras_anytime.evaluation import evaluate_exits, format_table
    from keras_anytime.losses import SparseCategoricalCrossentropy

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    precision = "bfloat16" if args.mixed_precision else recipes.resolve_precision(args.precision)
    recipes.set_mixed_precision(precision == "bfloat16")
    strategy = _strategy(args.strategy)

    train_ds, val_ds = _train_and_val(args)
    steps = args.steps_per_epoch or len(train_ds)
    if steps < 1:
        raise SystemExit("The training split gave no full batch; lower --batch-size.")

    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(args)
        k = model.num_exits
        model.compile(
            recipes.optimizer(
                args.recipe,
                args.epochs,
                steps,
                args.batch_size,
                args.lr,
                recipes.WEIGHT_DECAY[args.recipe]
                if args.weight_decay is None
                else args.weight_decay,
            ),
            SparseCategoricalCrossentropy(
                recipes.LABEL_SMOOTHING[args.recipe]
                if args.label_smoothing is None
                else args.label_smoothing
            ),
            loss_weights=loss_weights(args, k),
            metrics=["accuracy"],
        )
    monitor = f"val_exit_{k}_accuracy"
    callbacks = [
        _epoch_timer(),
        _stop_on_nan(out),
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.weights.h5"),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=_best_so_far(out / "history.csv", monitor),
        ),
    ]
    if args.weighting == "adaloss":
        callbacks.insert(
            0,
            AdaLoss(
                momentum=args.adaloss_momentum,
                gamma=args.gamma,
                final_extra=args.final_extra,
                update_every=args.update_every,
            ),
        )
    callbacks.append(keras.callbacks.CSVLogger(str(out / "history.csv"), append=True))
    if args.verbose:
        callbacks.append(_progress_bar(k))
    run = {
        "argv": ["keras-anytime", *args.argv],
        "args": vars(args),
        "keras": keras.__version__,
        "backend": keras.config.backend(),
        "precision": precision,
        "starts_from": _starts_from(args, model, out),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str))

    start = time.time()
    model.fit(
        train_ds,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        validation_data=val_ds,
        callbacks=callbacks,
        verbose=args.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    seconds = time.time() - start
    model.save(out / "model.keras")
    rows = evaluate_exits(model, val_ds)
    print(format_table(rows, args.val_split))
    report = {"split": args.val_split, "exits": rows, "train_seconds_this_run": seconds}
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    return 0


def evaluate(args) -> int:
    from keras_anytime import zoo
    from keras_anytime.evaluation import evaluate_exits, format_table, plot_anytime_curves

    try:
        model = zoo.load_model_or_preset(args.model)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    dataset = _eval_batches(args.data, args.split, args.data_dir, args.batch_size)
    rows = evaluate_exits(model, dataset, from_logits=args.from_logits)
    print(format_table(rows, args.split))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_anytime_curves({model.name: rows}, str(out / "anytime_curve.png"), args.split)
    (out / "eval.json").write_text(json.dumps({"split": args.split, "exits": rows}, indent=2))
    print(f"wrote {out / 'anytime_curve.png'} and {out / 'eval.json'}")
    return 0


def zoo_list(args) -> int:
    from keras_anytime import zoo

    names = zoo.list_models()
    if not names:
        print("No presets in the zoo yet.")
    for name in names:
        p = zoo.get_preset(name)
        acc = p.get("val_accuracy") or [math.nan]
        print(f"{name:<28} {p['builder']:<16} last-exit val acc {100 * acc[-1]:.2f}%")
    return 0


def _backend_version() -> str:
    import importlib

    import keras

    return importlib.import_module(keras.config.backend()).__version__


def zoo_add(args) -> int:
    """Add (or replace) a preset from a finished `train` run: its best val checkpoint,
    evaluated on val, hashed and copied into the zoo folder with its manifest entry."""
    import platform

    import keras

    import keras_anytime
    from keras_anytime import zoo
    from keras_anytime.evaluation import evaluate_exits, format_table
    from keras_anytime.flops import exit_flops

    run = Path(args.run)
    info = json.loads((run / "run.json").read_text())
    train_args = argparse.Namespace(**{**info["args"], "weights": None})
    model = build_model(train_args)
    if model.builder_config is None:
        raise SystemExit(
            f"{run} is a --weighting opt run: its network is cut off after exit "
            f"{model.num_exits}, which no builder makes, so it cannot be a zoo preset."
        )
    model.load_weights(run / "best.weights.h5")
    builder, config = model.builder_config
    folder = Path(args.zoo_dir)
    target = folder / f"{args.name}.weights.h5"
    model.save_weights(target)  # the weights alone, without the optimiser state
    val = _eval_batches(train_args.data, train_args.val_split, args.data_dir, 256)
    rows = evaluate_exits(model, val)
    print(format_table(rows, train_args.val_split))
    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    seconds = sum(float(r.get("epoch_seconds") or 0) for r in history)
    argv = ["keras-anytime", *info["argv"][1:]]
    entry = {
        "name": args.name,
        "builder": builder,
        "config": config,
        "weights": "cifar10",
        "classes": train_args.classes,
        "file": target.name,
        "sha256": zoo.sha256(target),
        "data": f"{train_args.data}, local NumPy copy ({args.data_description})",
        "train_split": f"{train_args.train_split} (records 0..44,999)",
        "selected_on": f"{train_args.val_split} (records 45,000..49,999), best last exit",
        "command": shlex.join(argv),
        "epochs": train_args.epochs,
        "epochs_completed": len(history),
        "wall_time_hours": round((args.wall_time_hours or seconds / 3600), 2),
        "hardware": args.hardware
        or f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "val_accuracy": [round(r["accuracy"], 4) for r in rows],
        "macs": exit_flops(model),
        "params": model.count_params(),
        "versions": {
            "keras_anytime": keras_anytime.__version__,
            "keras": keras.__version__,
            keras.config.backend(): _backend_version(),
        },
        "starts_from": info.get("starts_from"),
        "note": args.note,
    }
    manifest_path = folder / "manifest.json"
    presets = json.loads(manifest_path.read_text())["presets"]
    presets = [p for p in presets if p["name"] != args.name] + [entry]
    manifest_path.write_text(json.dumps({"presets": presets}, indent=2) + "\n")
    print(f"wrote {target} and {manifest_path}")
    return 0


def parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    top = argparse.ArgumentParser(
        prog="keras-anytime", description="Train and evaluate anytime (multi-exit) networks."
    )
    verbs = top.add_subparsers(dest="verb", required=True)

    t = verbs.add_parser(
        "train",
        help="train an anytime network",
        description="Train an anytime network with a loss weighting, resumably.",
        epilog=TRAIN_EXAMPLE,
        formatter_class=fmt,
    )
    t.add_argument("--family", choices=FAMILIES, default="resnet")
    t.add_argument("--depth", type=int, default=None, help="resnet: 20; densenet: 100")
    t.add_argument("--width", type=int, default=None, help="resnet base width (16 CIFAR)")
    t.add_argument("--growth-rate", type=int, default=None, help="densenet (12 CIFAR)")
    t.add_argument("--msdnet-config", default="cifar_anytime", help="msdnet: MSDNET_CONFIGS key")
    t.add_argument("--n-blocks", type=int, default=None, help="msdnet: override n_blocks")
    t.add_argument("--exit-every", type=int, default=1, help="resnet, densenet")
    t.add_argument("--classes", type=int, default=10)
    t.add_argument(
        "--weights", default=None, help="start from 'cifar10' (zoo preset) or a weights file"
    )
    t.add_argument("--weighting", choices=WEIGHTINGS, default="adaloss")
    t.add_argument(
        "--opt-at",
        type=int,
        default=-1,
        help="--weighting opt: train only the network up to this exit (1-based; -1: last)",
    )
    t.add_argument("--gamma", type=float, default=0.07, help="AdaLoss gamma")
    t.add_argument("--adaloss-momentum", type=float, default=0.9)
    t.add_argument("--final-extra", type=float, default=0.0)
    t.add_argument("--update-every", type=int, default=100)
    t.add_argument("--epochs", type=int, default=2)
    t.add_argument("--recipe", choices=("fast", "short", "paper"), default="short")
    t.add_argument("--batch-size", type=int, default=128)
    lr_help = "peak learning rate (default per 128 images: short 1.6, paper 0.1)"
    t.add_argument("--lr", type=float, default=None, help=lr_help)
    t.add_argument(
        "--weight-decay", type=float, default=None, help="decoupled, on kernels (recipe's)"
    )
    t.add_argument("--label-smoothing", type=float, default=None, help="(the recipe's)")
    t.add_argument(
        "--precision",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="bfloat16: the mixed_bfloat16 policy; auto: bfloat16 on a GPU or a CPU with "
        "native bfloat16 (1.6x float32's images/s there), else float32",
    )
    t.add_argument("--mixed-precision", action="store_true", help="same as --precision bfloat16")
    t.add_argument("--data", default="cifar10")
    t.add_argument("--data-dir", default=None, help="local NumPy folder (else tfds)")
    t.add_argument("--cutout", type=int, default=0, help="Cutout square side, pixels (16 CIFAR)")
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val")
    t.add_argument("--steps-per-epoch", type=int, default=None)
    t.add_argument("--strategy", choices=("none", "mirrored", "multiworker"), default="none")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--verbose", type=int, default=1, help="Keras fit verbosity (1: bar)")
    t.add_argument("--out", required=True, help="output folder")
    t.set_defaults(func=train)

    e = verbs.add_parser(
        "eval",
        help="evaluate every exit of a saved model or zoo preset",
        description="Evaluate every exit of a saved model or zoo preset on a data split.",
        epilog=EVAL_EXAMPLE,
        formatter_class=fmt,
    )
    e.add_argument("model", help="a .keras file or a zoo preset name")
    e.add_argument("--data", default="cifar10")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--split", default="val")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument(
        "--from-logits", action="store_true", help="the exits output logits, not probabilities"
    )
    e.add_argument("--out", default=".", help="folder for anytime_curve.png and eval.json")
    e.set_defaults(func=evaluate)

    z = verbs.add_parser(
        "zoo",
        help="the pretrained presets",
        description="List the pretrained presets.",
        epilog=ZOO_EXAMPLE,
        formatter_class=fmt,
    )
    z_verbs = z.add_subparsers(dest="zoo_verb", required=True)
    z_verbs.add_parser(
        "list",
        help="list the presets",
        description="List the presets.",
        epilog=ZOO_EXAMPLE,
        formatter_class=fmt,
    ).set_defaults(func=zoo_list)
    a = z_verbs.add_parser(
        "add",
        help="add a preset from a finished train run (maintainers)",
        description="Evaluate a train run's best checkpoint on val and add it to the zoo.",
        epilog=ZOO_EXAMPLE,
        formatter_class=fmt,
    )
    a.add_argument("run", help="the train --out folder")
    a.add_argument("--name", required=True)
    a.add_argument("--data-dir", default=None)
    a.add_argument("--zoo-dir", default=str(Path(__file__).resolve().parent.parent / "zoo"))
    a.add_argument("--data-description", default="JPEG-decoded training split")
    a.add_argument("--wall-time-hours", type=float, default=None, help="else from history")
    a.add_argument("--hardware", default=None)
    a.add_argument("--note", default="")
    a.set_defaults(func=zoo_add)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # recorded in run.json
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
