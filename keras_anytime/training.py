"""One training run of `keras-anytime train`: the model its arguments describe, the data,
the callbacks (resumable backup, best checkpoint, AdaLoss, NaN stop, progress bar) and
`fit`, then the per-exit evaluation on val.

`run(args)` takes the parsed arguments of `cli.parser()`; OUT/run.json records them with
the versions, the data folder's description, the hardware and, under `starts`, what each
start of a resumed run ran on, so that a finished run carries its own provenance
(`zoo/tools/add_preset.py` reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import time
from pathlib import Path


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
    """A callback that logs each epoch's wall time as `epoch_seconds` and the learning
    rate at its end as `learning_rate` (into history.csv)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            logs["epoch_seconds"] = time.time() - self.start
            logs["learning_rate"] = learning_rate(self.model.optimizer)

    return EpochTimer()


def _progress_bar(num_exits: int):
    """Keras's progress bar with four figures: the total loss, the last exit's accuracy,
    the mean accuracy over the exits and the learning rate (val figures at epoch end).
    history.csv and TensorBoard still get every exit's loss, accuracy and AdaLoss weight."""
    import keras
    import numpy as np

    accuracies = [f"exit_{k}_accuracy" for k in range(1, num_exits + 1)]

    class ExitProgbar(keras.callbacks.ProgbarLogger):
        def _shown(self, logs, prefix=""):
            logs = logs or {}
            shown = {}
            if f"{prefix}loss" in logs:
                shown[f"{prefix}loss"] = logs[f"{prefix}loss"]
            found = [logs[prefix + a] for a in accuracies if prefix + a in logs]
            if found:
                shown[f"{prefix}last_exit_acc"] = found[-1]
                shown[f"{prefix}mean_exit_acc"] = float(np.mean(found))
            return shown

        def on_train_batch_end(self, batch, logs=None):
            shown = self._shown(logs)
            shown["lr"] = learning_rate(self.model.optimizer)
            super().on_train_batch_end(batch, shown)

        def on_test_batch_end(self, batch, logs=None):
            super().on_test_batch_end(batch, self._shown(logs))

        def on_epoch_end(self, epoch, logs=None):
            shown = {**self._shown(logs), **self._shown(logs, "val_")}
            super().on_epoch_end(epoch, shown)

        def on_test_end(self, logs=None):
            super().on_test_end(self._shown(logs))

    return ExitProgbar()


def learning_rate(optimizer) -> float:
    """The optimiser's learning rate at its current step."""
    import keras

    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


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
    from keras_anytime import presets

    recorded = out / "run.json"
    if (out / "backup").is_dir() and recorded.is_file():
        previous = json.loads(recorded.read_text())
        if "starts_from" in previous:
            return previous["starts_from"]
    if not args.weights:
        return None
    if args.weights not in presets.PRESET_WEIGHTS:
        return {"file": str(Path(args.weights).resolve()), "sha256": presets.sha256(args.weights)}
    # a --weighting opt model is cut off and has no builder_config; its family's has one
    builder_config = (
        model.builder_config
        or _build_family(argparse.Namespace(**{**vars(args), "weights": None})).builder_config
    )
    preset = presets.find_preset(*builder_config, args.weights)
    record = ("name", "sha256", "command", "epochs_completed", "wall_time_hours", "hardware")
    return {
        **{key: preset[key] for key in record},
        "val_accuracy_last_exit": preset["val_accuracy"][-1],
        "starts_from": preset.get("starts_from"),
    }


def eval_batches(name: str, split: str, data_dir, batch_size: int):
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


def train_and_val(args):
    """The training batches (shuffled, augmented) and the val batches (256): `datasets.load`'s
    tf.data pipelines on TensorFlow, else `datasets.NumpyBatches` over a local NumPy
    folder (tensorflow-datasets needs TensorFlow)."""
    import keras

    from keras_anytime import datasets

    val = eval_batches(args.data, args.val_split, args.data_dir, 256)
    if keras.config.backend() == "tensorflow":
        train = datasets.load(
            args.data,
            args.train_split,
            args.data_dir,
            args.batch_size,
            seed=args.seed,
            cutout=args.cutout,
        )
        return train, val
    x, y = datasets.load_numpy(datasets.local_dir(args.data_dir), args.train_split, args.data)
    train = datasets.NumpyBatches(
        x, y, args.batch_size, augment=True, shuffle=True, seed=args.seed, cutout=args.cutout
    )
    return train, val


def run(args) -> int:
    """Train as `args` say; the global dtype policy is restored when it returns."""
    import keras

    policy = keras.mixed_precision.global_policy()
    try:
        return _run(args)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _compiled_model(args, steps: int, jit_compile: bool):
    """The model of `args`, compiled with the recipe's optimiser and loss."""
    from keras_anytime import recipes
    from keras_anytime.losses import SparseCategoricalCrossentropy

    model = build_model(args)
    l2 = recipes.KERNEL_L2[args.recipe] if args.l2 is None else args.l2
    if l2 is not None:
        recipes.set_kernel_l2(model, l2)
    weight_decay = (
        recipes.WEIGHT_DECAY[args.recipe] if args.weight_decay is None else args.weight_decay
    )
    smoothing = (
        recipes.LABEL_SMOOTHING[args.recipe]
        if args.label_smoothing is None
        else args.label_smoothing
    )
    model.compile(
        recipes.optimizer(args.recipe, args.epochs, steps, args.batch_size, args.lr, weight_decay),
        SparseCategoricalCrossentropy(smoothing),
        loss_weights=loss_weights(args, model.num_exits),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def _ema(args) -> float:
    """The weight-EMA momentum of `args` (0: none): --ema, else the recipe's."""
    from keras_anytime import recipes

    return recipes.EMA[args.recipe] if args.ema is None else args.ema


def _callbacks(args, out: Path, num_exits: int) -> list:
    import keras

    from keras_anytime.callbacks import AdaLoss, WeightEMA

    monitor = f"val_exit_{num_exits}_accuracy"
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
    if _ema(args):
        # after the backup, which keeps the trained weights, before the checkpoint and the
        # log, which see the averaged ones; validation runs on the average too, and the
        # average is kept beside the backup for a resumed run
        ema = WeightEMA(_ema(args), path=out / "backup" / "weight_ema.npz")
        callbacks.insert(3, ema)
    if args.weighting == "adaloss":
        adaloss = AdaLoss(
            momentum=args.adaloss_momentum,
            gamma=args.gamma,
            final_extra=args.final_extra,
            update_every=args.update_every,
        )
        callbacks.insert(0, adaloss)
    callbacks.append(keras.callbacks.CSVLogger(str(out / "history.csv"), append=True))
    if args.verbose:
        callbacks.append(_progress_bar(num_exits))
    return callbacks


def data_record(args) -> dict:
    """Where the run's images came from: the local folder and what it holds, or tfds."""
    from keras_anytime import datasets

    folder = datasets.local_dir(args.data_dir)
    if folder is None:
        return {"name": args.data, "source": "tensorflow-datasets"}
    return {
        "name": args.data,
        "source": "local NumPy folder",
        "folder": str(folder.resolve()),
        "holds": datasets.describe(folder),
    }


START_FIELDS = ("keras", "backend", "precision", "jit_compile", "hardware")


def _starts(out: Path, this: dict) -> list[dict]:
    """Each start of the run in OUT, oldest first: the 0-based epoch it began at and its
    START_FIELDS, this start's `this`. A run resumed elsewhere keeps what it began on, e.g.
    mixed_bfloat16 under `--precision auto` before float32 on a CPU without native bfloat16.
    A record without `starts` is that of a run started once, at epoch 0."""
    metadata = out / "backup" / "training_metadata.json"
    recorded = out / "run.json"
    if not (metadata.is_file() and recorded.is_file()):
        return [{"epoch": 0, **this}]
    previous = json.loads(recorded.read_text())
    earlier = previous.get("starts") or [
        {"epoch": 0, **{key: previous.get(key) for key in START_FIELDS}}
    ]
    # BackupAndRestore's count of finished epochs, the index of the one it resumes
    epoch = json.loads(metadata.read_text())["epoch"]
    return [*earlier, {"epoch": epoch, **this}]


def _hardware() -> str:
    import keras

    from keras_anytime import recipes

    accelerator = "a GPU" if recipes.has_gpu(keras.config.backend()) else "no GPU"
    bfloat16 = "native bfloat16" if recipes.cpu_has_bfloat16() else "no native bfloat16"
    return f"{_cpu_name()}, {os.cpu_count()} cores, {bfloat16}, {accelerator}"


def _cpu_name() -> str:
    """The CPU's model name (Linux `/proc/cpuinfo`), else the machine type, e.g. "x86_64"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(args) -> int:
    import keras

    from keras_anytime import recipes
    from keras_anytime.evaluation import evaluate_exits, format_table

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    precision = "bfloat16" if args.mixed_precision else recipes.resolve_precision(args.precision)
    recipes.set_mixed_precision(precision == "bfloat16")
    jit_compile = recipes.resolve_jit_compile(args.jit_compile, precision)
    strategy = _strategy(args.strategy)

    train_ds, val_ds = train_and_val(args)
    steps = args.steps_per_epoch or len(train_ds)
    if steps < 1:
        raise SystemExit("The training split gave no full batch; lower --batch-size.")
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = _compiled_model(args, steps, jit_compile)
    record = {
        "argv": ["keras-anytime", *args.argv],
        "args": vars(args),
        "keras": keras.__version__,
        "backend": keras.config.backend(),
        "precision": precision,
        "jit_compile": jit_compile,
        "data": data_record(args),
        "hardware": _hardware(),
        "starts_from": _starts_from(args, model, out),
    }
    record["starts"] = _starts(out, {key: record[key] for key in START_FIELDS})
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))

    start = time.time()
    model.fit(
        train_ds,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        validation_data=val_ds,
        callbacks=_callbacks(args, out, model.num_exits),
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
