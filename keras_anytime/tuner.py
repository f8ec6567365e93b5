"""keras-tuner search spaces for anytime networks, with an anytime objective.

`AnytimeHyperModel` searches the family, its depth and width, `exit_every` and AdaLoss's
`gamma`. Every trial trains with AdaLoss and reports two metrics the tuner can read:
`val_last_exit_accuracy` (the deepest exit) and `val_mean_exit_accuracy` (the mean over
exits: the area under the anytime curve, exit by exit). `objective("anytime")` or
`objective("last")` names one for the tuner (`AnytimeHyperModel`'s example).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import keras_tuner
import numpy as np

from keras_anytime import registry
from keras_anytime.callbacks import AdaLoss

SEARCHABLE = tuple(name for name, f in registry.FAMILIES.items() if f.search_space)
__all__ = ["AnytimeHyperModel", "ExitSummary", "OBJECTIVES", "SEARCHABLE"]

OBJECTIVES = {"anytime": "val_mean_exit_accuracy", "last": "val_last_exit_accuracy"}


def _hyperparameter(hp: keras_tuner.HyperParameters, name: str, space: tuple):
    """The hyperparameter of a family table's search-space entry ("choice", values) or
    ("int", low, high)."""
    kind, *values = space
    if kind == "choice":
        return hp.Choice(name, values[0])
    return hp.Int(name, *values)


class ExitSummary(keras.callbacks.Callback):
    """Adds `val_mean_exit_accuracy` and `val_last_exit_accuracy` to the epoch logs.

    They come from the `val_exit_k_accuracy` metrics. Place it before the callbacks that
    read them.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        keys = sorted(
            (k for k in logs if k.startswith("val_exit_") and k.endswith("_accuracy")),
            key=lambda k: int(k.split("_")[2]),
        )
        if not keys and "val_accuracy" in logs:  # one exit: Keras drops the output name
            keys = ["val_accuracy"]
        if keys:
            logs["val_mean_exit_accuracy"] = float(np.mean([logs[k] for k in keys]))
            logs["val_last_exit_accuracy"] = float(logs[keys[-1]])


class AnytimeHyperModel(keras_tuner.HyperModel):
    """Anytime networks trained with AdaLoss, over a space of families and sizes.

    Args:
        input_shape: (height, width, channels) of the raw RGB 0..255 inputs. Defaults to
            (32, 32, 3).
        classes: number of classes. Defaults to 10.
        families: the families to search, a subset of SEARCHABLE. Defaults to
            ("resnet", "densenet").
        learning_rate: SGD learning rate (momentum 0.9). Defaults to 0.05.
        name: the hypermodel's name. Defaults to None.

    Raises:
        ValueError: `families` is empty or names a family outside SEARCHABLE.

    Example:

    ```python
    hypermodel = AnytimeHyperModel(input_shape=(32, 32, 3), classes=10)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective("anytime"), max_trials=10
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=5)
    ```
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (32, 32, 3),
        classes: int = 10,
        families: Sequence[str] = ("resnet", "densenet"),
        learning_rate: float = 0.05,
        name: str | None = None,
    ):
        super().__init__(name=name, tunable=True)
        unknown = set(families) - set(SEARCHABLE)
        if unknown or not families:
            raise ValueError(
                f"families must be a non-empty subset of {SEARCHABLE}, got {families}."
            )
        self.input_shape = tuple(input_shape)
        self.classes = classes
        self.families = tuple(families)
        self.learning_rate = learning_rate

    @staticmethod
    def objective(kind: str = "anytime") -> keras_tuner.Objective:
        """The tuner's `keras_tuner.Objective` of an anytime metric, to maximise.

        Args:
            kind: "anytime" (`val_mean_exit_accuracy`, the mean val accuracy over the
                exits) or "last" (`val_last_exit_accuracy`, the deepest exit's). Defaults
                to "anytime".

        Raises:
            ValueError: an unknown kind.
        """
        if kind not in OBJECTIVES:
            raise ValueError(f"Unknown objective {kind!r}: use one of {sorted(OBJECTIVES)}.")
        return keras_tuner.Objective(OBJECTIVES[kind], direction="max")

    def build(self, hp: keras_tuner.HyperParameters):
        family = hp.Choice("family", list(self.families))
        with hp.conditional_scope("family", [family]):
            config = {
                argument: _hyperparameter(hp, f"{family}_{argument}", space)
                for argument, space in registry.FAMILIES[family].search_space.items()
            }
        model = registry.builder(family)(
            **config, input_shape=self.input_shape, classes=self.classes
        )
        hp.Float("gamma", 0.0, 0.2, step=0.01, default=0.07)
        model.compile(
            keras.optimizers.SGD(self.learning_rate, momentum=0.9),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model

    def fit(self, hp: keras_tuner.HyperParameters, model, *args, callbacks=None, **kwargs):
        """`model.fit` with AdaLoss(gamma=hp["gamma"]) (when the model has several exits)
        and the exit summary metrics."""
        if "validation_data" not in kwargs and not kwargs.get("validation_split"):
            raise ValueError("The anytime objectives are val metrics: pass validation_data.")
        extra = [ExitSummary()]
        if model.num_exits > 1:
            extra.append(AdaLoss(gamma=hp.get("gamma")))
        return model.fit(*args, callbacks=extra + list(callbacks or []), **kwargs)
