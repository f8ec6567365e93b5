"""The `keras-anytime` command: `train`, `eval` and `zoo list`.

The verbs parse their arguments here and import the package only when they run, so
`--help` stays fast; `train` maps its arguments to a `training.TrainConfig` and runs
`training.train`. Only this module turns the package's errors into exit codes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from keras_anytime.registry import FAMILIES

__all__ = ["main", "parser", "train_config"]

_TRAIN_FAMILIES = tuple(name for name, family in FAMILIES.items() if family.trainable)
_WEIGHTINGS = ("adaloss", "const", "linear", "half_end", "sieve", "opt")
# every model argument a trainable family takes, by flag (a shared one, such as --depth,
# once); which family takes which is FAMILIES' business
_MODEL_OPTIONS = {
    option.cli_flag: option for name in _TRAIN_FAMILIES for option in FAMILIES[name].train_options
}

_TRAIN_EXAMPLE = """example:
  keras-anytime train --family resnet --depth 20 --weighting adaloss --epochs 2 \\
      --data cifar10 --data-dir ../shared/data/cifar10 --out runs/resnet20-adaloss

Writes OUT/history.csv (per-exit metrics and AdaLoss weights per epoch), OUT/backup/ (a
checkpoint every epoch; rerunning the same command resumes from it), OUT/best.weights.h5
(best val accuracy at the last exit), OUT/model.keras and OUT/eval.json (per-exit val).
"""
_EVAL_EXAMPLE = """examples:
  keras-anytime eval runs/resnet20-adaloss/model.keras --data-dir ../shared/data/cifar10
  keras-anytime eval resnet32_cifar10 --split val --out eval/
  keras-anytime eval resnet20_cifar10 --flip   # with flip test-time augmentation

Prints each exit's cumulative MACs, accuracy and loss; writes OUT/anytime_curve.png and
OUT/eval.json.
"""
_ZOO_EXAMPLE = """example:
  keras-anytime zoo list

Maintainers add a preset from a finished train run with zoo/tools/add_preset.py (in the repository).
"""


def train_config(args):
    """The `training.TrainConfig` of parsed `train` arguments.

    Args:
        args: what `parser().parse_args(["train", ...])` returns.

    Raises:
        ValueError: a model option the chosen family does not take.
    """
    from keras_anytime.training import TrainConfig

    family = FAMILIES[args.family]
    takes = {option.cli_flag for option in family.train_options}
    given = {flag: getattr(args, _dest(flag)) for flag in _MODEL_OPTIONS}
    stray = sorted(flag for flag, value in given.items() if value is not None and flag not in takes)
    if stray:
        raise ValueError(
            f"--family {args.family} takes no {', '.join(stray)}: its model options are "
            f"{', '.join(sorted(takes))}."
        )
    model = {
        o.name: given[o.cli_flag] for o in family.train_options if given[o.cli_flag] is not None
    }
    skip = {"verb", "func", "argv", "mixed_precision", *map(_dest, _MODEL_OPTIONS)}
    values = {k: v for k, v in vars(args).items() if k not in skip}
    if args.mixed_precision:
        values["precision"] = "bfloat16"
    return TrainConfig(**values, model=model)


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _train(args) -> int:
    from keras_anytime import training

    try:
        training.train(train_config(args), argv=args.argv)
    except (ValueError, training.TrainingDiverged) as e:
        raise SystemExit(str(e)) from e
    return 0


def _evaluate(args) -> int:
    from keras_anytime import zoo
    from keras_anytime.evaluation import evaluate_exits, format_table, plot_anytime_curves
    from keras_anytime.training import eval_batches

    try:
        model = zoo.load_model_or_preset(args.model)
        dataset = eval_batches(args.data, args.split, args.data_dir, args.batch_size)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    rows = evaluate_exits(model, dataset, from_logits=args.from_logits, flip=args.flip)
    print(format_table(rows, args.split + (" flip" if args.flip else "")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_anytime_curves({model.name: rows}, str(out / "anytime_curve.png"), args.split)
    report = {"split": args.split, "flip": args.flip, "exits": rows}
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    print(f"wrote {out / 'anytime_curve.png'} and {out / 'eval.json'}")
    return 0


def _zoo_list(args) -> int:
    from keras_anytime import zoo

    names = zoo.list_models()
    if not names:
        print("No presets in the zoo yet.")
    for name in names:
        p = zoo.get_preset(name)
        acc = p.get("val_accuracy") or [math.nan]
        print(f"{name:<28} {p['builder']:<16} last-exit val acc {100 * acc[-1]:.2f}%")
    return 0


def parser() -> argparse.ArgumentParser:
    """The `keras-anytime` argument parser, with the verbs `train`, `eval` and `zoo list`."""
    top = argparse.ArgumentParser(
        prog="keras-anytime", description="Train and evaluate anytime (multi-exit) networks."
    )
    verbs = top.add_subparsers(dest="verb", required=True)
    _add_train(verbs)
    _add_eval(verbs)
    _add_zoo(verbs)
    return top


def _add_train(verbs) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    t = verbs.add_parser(
        "train",
        help="train an anytime network",
        description="Train an anytime network with a loss weighting, resumably.",
        epilog=_TRAIN_EXAMPLE,
        formatter_class=fmt,
    )
    t.add_argument("--family", choices=_TRAIN_FAMILIES, default="resnet")
    for flag, option in _MODEL_OPTIONS.items():
        t.add_argument(flag, type=option.type, default=None, help=option.help)
    t.add_argument("--classes", type=int, default=10)
    t.add_argument(
        "--weights",
        default=None,
        help="start from a zoo preset (a tag such as 'cifar10', or a preset name) or a file",
    )
    t.add_argument("--weighting", choices=_WEIGHTINGS, default="adaloss")
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
    t.add_argument("--recipe", choices=("fast", "short", "paper", "step"), default="short")
    t.add_argument("--batch-size", type=int, default=128)
    lr_help = "peak learning rate (default per 128 images: short 1.6, fast 0.8, paper and step 0.1)"
    t.add_argument("--lr", type=float, default=None, help=lr_help)
    t.add_argument(
        "--weight-decay", type=float, default=None, help="decoupled, on kernels (recipe's)"
    )
    t.add_argument(
        "--l2", type=float, default=None, help="kernels' L2 factor, 0: none (the builders' 1e-4)"
    )
    t.add_argument("--label-smoothing", type=float, default=None, help="(the recipe's)")
    t.add_argument(
        "--ema", type=float, default=None, help="weight EMA momentum, 0: none (the recipe's)"
    )
    t.add_argument(
        "--precision",
        choices=("auto", "bfloat16", "float32"),
        default="auto",
        help="bfloat16: the mixed_bfloat16 policy; auto: bfloat16 on a GPU or a CPU with "
        "native bfloat16, else float32 (fix it for a run that may resume on another machine)",
    )
    t.add_argument("--mixed-precision", action="store_true", help="same as --precision bfloat16")
    t.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA; auto: under JAX, on a TensorFlow GPU, and for float32 on a TensorFlow "
        "CPU, else off",
    )
    t.add_argument("--data", default="cifar10")
    t.add_argument("--data-dir", default=None, help="local NumPy folder (else tfds)")
    t.add_argument("--cutout", type=int, default=0, help="Cutout square side, pixels (16 CIFAR)")
    t.add_argument("--train-split", default="train")
    t.add_argument("--val-split", default="val")
    t.add_argument("--steps-per-epoch", type=int, default=None)
    t.add_argument(
        "--strategy",
        choices=("none", "mirrored", "multiworker"),
        default="none",
        help="tf.distribute (TensorFlow backend)",
    )
    t.add_argument(
        "--distribution",
        choices=("none", "data-parallel"),
        default="none",
        help="keras.distribution over this host's devices (JAX backend)",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--verbose", type=int, default=1, help="Keras fit verbosity (1: bar)")
    t.add_argument("--out", required=True, help="output folder")
    t.set_defaults(func=_train)


def _add_eval(verbs) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    e = verbs.add_parser(
        "eval",
        help="evaluate every exit of a saved model or zoo preset",
        description="Evaluate every exit of a saved model or zoo preset on a data split.",
        epilog=_EVAL_EXAMPLE,
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
    e.add_argument(
        "--flip",
        action="store_true",
        help="flip test-time augmentation: average each exit over the image and its mirror "
        "(two passes; the MACs reported are doubled)",
    )
    e.add_argument("--out", default=".", help="folder for anytime_curve.png and eval.json")
    e.set_defaults(func=_evaluate)


def _add_zoo(verbs) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    z = verbs.add_parser(
        "zoo",
        help="the pretrained presets",
        description="List the pretrained presets.",
        epilog=_ZOO_EXAMPLE,
        formatter_class=fmt,
    )
    z_verbs = z.add_subparsers(dest="zoo_verb", required=True)
    z_verbs.add_parser(
        "list",
        help="list the presets",
        description="List the presets.",
        epilog=_ZOO_EXAMPLE,
        formatter_class=fmt,
    ).set_defaults(func=_zoo_list)


def main(argv: list[str] | None = None) -> int:
    """Run the `keras-anytime` command; the package's errors become exit messages.

    Args:
        argv: the arguments after the program's name. Defaults to None (`sys.argv[1:]`).

    Returns:
        The exit code, 0 on success.
    """
    args = parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # recorded in run.json
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
