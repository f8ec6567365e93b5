"""`train(config)`: one training run, from a `TrainConfig` to a trained, evaluated model
in the run's folder, resumable from its per-epoch backup."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from keras_anytime.training import provenance
from keras_anytime.training.config import TrainConfig

__all__ = ["TrainResult", "build_model", "eval_batches", "loss_weights", "train"]


@dataclass
class TrainResult:
    """What `train` returns.

    Args:
        config: the run's configuration.
        history: Keras's history of this start: {metric: [value per epoch]}.
        exits: the per-exit `val_split` table (`evaluation.evaluate_exits`): exit, MACs,
            accuracy, loss.
        out: the run's folder; model.keras, best.weights.h5, eval.json, history.csv and
            run.json are in it.
        seconds: the wall time of this start's `fit`.
    """

    config: TrainConfig
    history: dict[str, list[float]]
    exits: list[dict]
    out: Path
    seconds: float

    @property
    def model_path(self) -> Path:
        """The trained model, `out / "model.keras"`."""
        return self.out / "model.keras"

    @property
    def best_weights_path(self) -> Path:
        """The weights of the best val accuracy at the last exit, `out / "best.weights.h5"`."""
        return self.out / "best.weights.h5"


def build_model(config: TrainConfig):
    """The model a run trains, its weights loaded when the run starts from some.

    Args:
        config: the run; for the "opt" weighting the model is the network up to exit
            `config.opt_at` only.
    """
    from keras_anytime import registry
    from keras_anytime.models import truncate

    build = registry.builder(config.family)
    model = build(**config.model_kwargs, classes=config.classes, weights=config.weights)
    if config.weighting == "opt":  # a single-exit network: nothing past it runs
        model = truncate(model, model.num_exits if config.opt_at == -1 else config.opt_at)
    return model


def loss_weights(weighting: str, num_exits: int) -> list[float]:
    """The exits' static loss weights of a weighting (AdaLoss starts from CONST's).

    Args:
        weighting: one of `WEIGHTINGS`.
        num_exits: the model's number of exits (for "opt", the truncated model's).
    """
    from keras_anytime import weighting as schemes

    if weighting in ("adaloss", "const"):
        return schemes.const(num_exits)
    if weighting == "opt":  # the model is truncated at the chosen exit
        return schemes.opt(num_exits, -1)
    return schemes.SCHEMES[weighting](num_exits)


def _strategy(name: str):
    """The tf.distribute strategy named `name`; for "none", None (no strategy scope)."""
    if name == "none":
        return None
    import keras

    if keras.config.backend() != "tensorflow":
        raise ValueError(
            f"strategy {name!r} uses tf.distribute: run with KERAS_BACKEND=tensorflow, or "
            "use strategy 'none' (distribution 'data-parallel' on JAX)."
        )
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise ValueError("strategy 'multiworker' needs TF_CONFIG (cluster and task) set.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def eval_batches(name: str, split: str, data_dir, batch_size: int):
    """Unshuffled, unaugmented batches of a split, on any backend.

    `datasets.load` on TensorFlow, else `datasets.NumpyBatches` over a local NumPy folder
    (tensorflow-datasets needs TensorFlow).

    Args:
        name: the data set's name, e.g. "cifar10".
        split: "train", "val", "train_full" or "test".
        data_dir: a local NumPy folder; None: $KERAS_ANYTIME_DATA, else tfds.
        batch_size: images per batch.

    Raises:
        ValueError: no local folder on a backend other than TensorFlow.
    """
    import keras

    from keras_anytime import datasets

    if keras.config.backend() == "tensorflow":
        return datasets.load(name, split, data_dir, batch_size)
    folder = datasets.local_dir(data_dir)
    if folder is None:
        raise ValueError(
            f"On the {keras.config.backend()} backend the data come from a local NumPy folder: "
            f"set data_dir (--data-dir) or {datasets.ENV_VAR} (tensorflow-datasets needs "
            "TensorFlow)."
        )
    return datasets.NumpyBatches(*datasets.load_numpy(folder, split, name), batch_size)


def _train_and_val(config: TrainConfig):
    """The training batches (shuffled, augmented) and the val batches (256)."""
    import keras

    from keras_anytime import datasets

    val = eval_batches(config.data, config.val_split, config.data_dir, 256)
    if keras.config.backend() == "tensorflow":
        train = datasets.load(
            config.data,
            config.train_split,
            config.data_dir,
            config.batch_size,
            seed=config.seed,
            cutout=config.cutout,
        )
        return train, val
    folder = datasets.local_dir(config.data_dir)
    x, y = datasets.load_numpy(folder, config.train_split, config.data)
    train = datasets.NumpyBatches(
        x,
        y,
        config.batch_size,
        augment=True,
        shuffle=True,
        seed=config.seed,
        cutout=config.cutout,
    )
    return train, val


def _data_parallel(config: TrainConfig) -> None:
    """Spread each batch over this host's devices (keras.distribution, JAX)."""
    from keras_anytime import datasets
    from keras_anytime.distribution import use_data_parallel

    devices = use_data_parallel(batch_size=config.batch_size).device_mesh.devices.size
    folder = datasets.local_dir(config.data_dir)
    if folder is None:  # _train_and_val says where the data must come from
        return
    # val runs in full batches of 256 and one last partial batch, which must split too
    remainder = len(datasets.load_numpy(folder, config.val_split, config.data)[1]) % 256
    if remainder % devices:
        raise ValueError(
            f"The {config.val_split} split ends with a batch of {remainder} images, which does "
            f"not split over {devices} devices: train on a number of devices that divides it."
        )


def _family_config(config: TrainConfig) -> tuple[str, dict]:
    """The `builder_config` of `config`'s whole family model, without weights."""
    from keras_anytime import registry

    build = registry.builder(config.family)
    return build(**config.model_kwargs, classes=config.classes).builder_config


def _or(value, default):
    return default if value is None else value


def _compiled_model(config: TrainConfig, steps: int, jit_compile: bool):
    """The model of `config`, compiled with the recipe's optimiser and loss."""
    from keras_anytime import recipes
    from keras_anytime.losses import SparseCategoricalCrossentropy

    model = build_model(config)
    l2 = _or(config.l2, recipes.KERNEL_L2[config.recipe])
    if l2 is not None:
        recipes.set_kernel_l2(model, l2)
    weight_decay = _or(config.weight_decay, recipes.WEIGHT_DECAY[config.recipe])
    smoothing = _or(config.label_smoothing, recipes.LABEL_SMOOTHING[config.recipe])
    optimizer = recipes.optimizer(
        config.recipe, config.epochs, steps, config.batch_size, config.lr, weight_decay
    )
    model.compile(
        optimizer,
        SparseCategoricalCrossentropy(smoothing),
        loss_weights=loss_weights(config.weighting, model.num_exits),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return model


def _best_so_far(history: Path, key: str) -> float | None:
    if not history.is_file():
        return None
    with open(history) as f:
        values = [float(row[key]) for row in csv.DictReader(f) if row.get(key)]
    return max(values) if values else None


def _callbacks(config: TrainConfig, out: Path, num_exits: int) -> list:
    import keras

    from keras_anytime import recipes
    from keras_anytime.callbacks import AdaLoss, WeightEMA
    from keras_anytime.training.callbacks import EpochTimer, ExitProgressBar, StopOnNaN

    monitor = f"val_exit_{num_exits}_accuracy"
    callbacks = [
        EpochTimer(),
        StopOnNaN(out / "backup"),
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
    ema = _or(config.ema, recipes.EMA[config.recipe])
    if ema:
        # after the backup, which keeps the trained weights, before the checkpoint and the
        # log, which see the averaged ones; validation runs on the average too, and the
        # average is kept beside the backup for a resumed run
        callbacks.insert(3, WeightEMA(ema, path=out / "backup" / "weight_ema.npz"))
    if config.weighting == "adaloss":
        adaloss = AdaLoss(
            momentum=config.adaloss_momentum,
            gamma=config.gamma,
            final_extra=config.final_extra,
            update_every=config.update_every,
        )
        callbacks.insert(0, adaloss)
    callbacks.append(keras.callbacks.CSVLogger(str(out / "history.csv"), append=True))
    if config.verbose:
        callbacks.append(ExitProgressBar(num_exits))
    return callbacks


def train(config: TrainConfig, argv: list[str] | None = None) -> TrainResult:
    """Train, checkpoint and evaluate the model `config` describes.

    A run whose folder holds a backup resumes from it at its next epoch. The global dtype
    policy is restored when `train` returns.

    Args:
        config: the run.
        argv: the command line that asked for it, recorded in run.json (None from Python).

    Returns:
        A `TrainResult`: the history, the per-exit val table and the run's folder.

    Raises:
        ValueError: a configuration this machine or backend cannot run.
        training.TrainingDiverged: the training loss became NaN or infinite.
    """
    import keras

    policy = keras.mixed_precision.global_policy()
    distribution = keras.distribution.distribution()
    try:
        return _train(config, argv)
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.distribution.set_distribution(distribution)


def _train(config: TrainConfig, argv: list[str] | None) -> TrainResult:
    import keras

    from keras_anytime import hardware
    from keras_anytime.evaluation import evaluate_exits, format_table

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    precision = hardware.resolve_precision(config.precision)
    hardware.set_mixed_precision(precision == "bfloat16")
    jit_compile = hardware.resolve_jit_compile(config.jit_compile, precision)
    strategy = _strategy(config.strategy)
    if config.distribution == "data-parallel":
        _data_parallel(config)

    train_ds, val_ds = _train_and_val(config)
    steps = config.steps_per_epoch or len(train_ds)
    if steps < 1:
        raise ValueError("The training split gave no full batch: lower the batch size.")
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = _compiled_model(config, steps, jit_compile)
    # an "opt" model is cut off and has no builder_config; its family's has one
    builder_config = model.builder_config or _family_config(config)
    record = {
        "argv": ["keras-anytime", *argv] if argv is not None else None,
        "config": config.to_dict(),
        "keras": keras.__version__,
        "backend": keras.config.backend(),
        "precision": precision,
        "jit_compile": jit_compile,
        "data": provenance.data_record(config.data, config.data_dir),
        "hardware": provenance.hardware(),
        "starts_from": provenance.starts_from(config.weights, builder_config, out),
    }
    record["starts"] = provenance.starts(out, {key: record[key] for key in provenance.START_FIELDS})
    (out / "run.json").write_text(json.dumps(record, indent=2, default=str))

    start = time.time()
    history = model.fit(
        train_ds,
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch,
        validation_data=val_ds,
        callbacks=_callbacks(config, out, model.num_exits),
        verbose=config.verbose,
        shuffle=False,  # the dataset shuffles itself
    )
    seconds = time.time() - start
    model.save(out / "model.keras")
    rows = evaluate_exits(model, val_ds)
    if config.verbose:
        print(format_table(rows, config.val_split))
    report = {"split": config.val_split, "exits": rows, "train_seconds_this_run": seconds}
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    return TrainResult(config, history.history, rows, out, seconds)
