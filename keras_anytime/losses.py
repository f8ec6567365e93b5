"""Losses for the exits, beside Keras's own."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["SparseCategoricalCrossentropy"]


@keras.saving.register_keras_serializable(package="keras_anytime")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy against integer labels, with label smoothing (Szegedy et al., 2016).

    The target is `1 - label_smoothing` on the label plus `label_smoothing / classes` on
    every class; `keras.losses.SparseCategoricalCrossentropy` has no smoothing.
    y_true: (batch,) or (batch, 1) integer labels; y_pred: (batch, classes) probabilities,
    or logits with `from_logits=True`. Returns (batch,) losses.

    Args:
        label_smoothing: the share of the target spread over every class, in [0, 1).
            Defaults to 0.0.
        from_logits: y_pred holds logits, not probabilities. Defaults to False.
        name: the loss's name. Defaults to "sparse_categorical_crossentropy".
        **kwargs: passed to `keras.losses.Loss` (e.g. `reduction`).

    Raises:
        ValueError: `label_smoothing` outside [0, 1).
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        from_logits: bool = False,
        name: str = "sparse_categorical_crossentropy",
        **kwargs,
    ):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        target = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            target, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }
