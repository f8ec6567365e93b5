"""`TrainConfig`: everything one training run needs, as data that run.json keeps."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_anytime import registry

__all__ = ["STRATEGIES", "DISTRIBUTIONS", "WEIGHTINGS", "TrainConfig"]

WEIGHTINGS = ("adaloss", "const", "linear", "half_end", "sieve", "opt")
STRATEGIES = ("none", "mirrored", "multiworker")  # tf.distribute, TensorFlow backend
DISTRIBUTIONS = ("none", "data-parallel")  # keras.distribution, JAX backend


@dataclass
class TrainConfig:
    """One training run: the model, its loss weighting, the recipe, the data, the output.

    Args:
        out: the run's folder: backup/ (every epoch; a run with the same `out` resumes
            from it), history.csv, best.weights.h5, model.keras, eval.json, run.json.
        family: a trainable family of `registry.FAMILIES` ("resnet", "densenet",
            "msdnet"). Default "resnet".
        model: the family's builder arguments that `train` sets (`registry.FAMILIES[family]
            .train_options`, e.g. {"depth": 20, "exit_every": 1}); absent ones take their
            defaults. Default {}.
        classes: number of classes. Default 10.
        weights: None (from scratch), a zoo preset of this configuration (a tag such as
            "cifar10", or a preset name) or a weights file to start from. Default None.
        weighting: the exits' loss weights, one of WEIGHTINGS: "adaloss" (the
            `callbacks.AdaLoss` callback), a static scheme of `keras_anytime.weighting`, or
            "opt" (only the network up to exit `opt_at`). Default "adaloss".
        opt_at: for "opt", the 1-based exit to train up to; -1: the last. Default -1.
        gamma: AdaLoss's gamma. Default 0.07.
        adaloss_momentum: AdaLoss's moving-average momentum. Default 0.9.
        final_extra: AdaLoss's extra weight on the last exit. Default 0.0.
        update_every: AdaLoss updates its weights every this many steps. Default 100.
        epochs: epochs of the schedule. Default 2.
        recipe: one of `recipes.RECIPES`. Default "short".
        batch_size: images per step. Default 128.
        lr: the peak learning rate. Default None: the recipe's, scaled by batch_size / 128.
        weight_decay: decoupled weight decay on the kernels. Default None: the recipe's.
        l2: the kernels' L2 factor (0: none). Default None: the recipe's, else the
            builders'.
        label_smoothing: the loss's label smoothing, in [0, 1). Default None: the recipe's.
        ema: momentum of an average of the weights (0: none; `callbacks.WeightEMA`).
            Default None: the recipe's.
        precision: "auto", "bfloat16" (`mixed_bfloat16`) or "float32"; "auto" picks
            bfloat16 on a GPU or a CPU with native bfloat16. Fix it for a run that may
            resume on another machine. Default "auto".
        jit_compile: "auto", "on" or "off" (XLA). Default "auto".
        data: the data set's name. Default "cifar10".
        data_dir: a local NumPy folder (`datasets.local_dir`). Default None:
            $KERAS_ANYTIME_DATA, else tensorflow-datasets.
        cutout: Cutout square side in pixels (0: none). Default 0.
        train_split: the split to train on. Default "train".
        val_split: the split to validate on, and to evaluate at the end. Default "val".
        steps_per_epoch: training steps per epoch. Default None: one pass over the
            training split.
        strategy: tf.distribute strategy, one of STRATEGIES (TensorFlow backend). Default
            "none".
        distribution: keras.distribution, one of DISTRIBUTIONS (JAX backend). Default
            "none".
        seed: random seed of the weights and the data order. Default 0.
        verbose: Keras `fit` verbosity (0 silent, 1 bar, 2 a line an epoch). Default 1.

    Raises:
        ValueError: a family `train` cannot build, a model argument the family does not
            take, an unknown weighting, strategy or distribution, or `epochs` or
            `batch_size` below 1.

    Example:

    ```python
    from keras_anytime.training import TrainConfig, train

    config = TrainConfig("runs/r8", model={"depth": 8}, epochs=2, data_dir="data/cifar10")
    result = train(config)
    print(result.exits[-1]["accuracy"])
    ```
    """

    out: str
    family: str = "resnet"
    model: dict[str, Any] = field(default_factory=dict)
    classes: int = 10
    weights: str | None = None
    weighting: str = "adaloss"
    opt_at: int = -1
    gamma: float = 0.07
    adaloss_momentum: float = 0.9
    final_extra: float = 0.0
    update_every: int = 100
    epochs: int = 2
    recipe: str = "short"
    batch_size: int = 128
    lr: float | None = None
    weight_decay: float | None = None
    l2: float | None = None
    label_smoothing: float | None = None
    ema: float | None = None
    precision: str = "auto"
    jit_compile: str = "auto"
    data: str = "cifar10"
    data_dir: str | None = None
    cutout: int = 0
    train_split: str = "train"
    val_split: str = "val"
    steps_per_epoch: int | None = None
    strategy: str = "none"
    distribution: str = "none"
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        self.out = str(self.out)
        family = registry.family(self.family)
        if not family.trainable:
            trainable = sorted(n for n, f in registry.FAMILIES.items() if f.trainable)
            raise ValueError(
                f"train cannot build family {self.family!r} ({family.builder} trains member "
                f"by member, see its docstring): use one of {trainable}."
            )
        family.builder_kwargs(self.model)  # refuses an argument or configuration it lacks
        for name, allowed in (
            ("weighting", WEIGHTINGS),
            ("strategy", STRATEGIES),
            ("distribution", DISTRIBUTIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}: use one of {allowed}.")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}."
            )

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The family builder's keyword arguments (without `classes` and `weights`)."""
        return registry.family(self.family).builder_kwargs(self.model)

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready data; `TrainConfig.from_dict` reads it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The configuration `to_dict` wrote.

        Args:
            values: `to_dict`'s data, e.g. read back from JSON.

        Raises:
            ValueError: a field `TrainConfig` does not have.
        """
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"TrainConfig has no field {sorted(unknown)}.")
        return cls(**values)

    @classmethod
    def from_run_json(cls, path: str | Path) -> TrainConfig:
        """The configuration of a run, from its run.json.

        run.json keeps it under `config`; runs of keras-anytime 0.1 kept the parsed command
        line under `args`, which this reads too.

        Args:
            path: the run.json file, or the run's folder.

        Raises:
            ValueError: a run.json with neither `config` nor `args`.
        """
        path = Path(path)
        record = json.loads((path / "run.json" if path.is_dir() else path).read_text())
        if "config" in record:
            return cls.from_dict(record["config"])
        if "args" in record:
            return cls._from_0_1_args(record["args"])
        raise ValueError(f"{path} records no training configuration (no 'config' or 'args').")

    @classmethod
    def _from_0_1_args(cls, args: dict[str, Any]) -> TrainConfig:
        # 0.1's `args` keep each model argument under its command-line flag's name
        options = registry.family(args["family"]).train_options or ()
        model = {o.name: args.get(o.cli_flag[2:].replace("-", "_")) for o in options}
        fields = {f.name for f in dataclasses.fields(cls)} - {"model", "precision"}
        values = {k: v for k, v in args.items() if k in fields}
        precision = "bfloat16" if args.get("mixed_precision") else args.get("precision", "auto")
        model = {k: v for k, v in model.items() if v is not None}
        return cls(**values, model=model, precision=precision)
