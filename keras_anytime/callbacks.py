"""Training callbacks: AdaLoss, adaptive per-exit loss weights (Hu et al., AAAI 2019,
arXiv 1708.06832), and WeightEMA, an average of the weights with BatchNorm's statistics."""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_anytime.models import AnytimeModel, ExitWeighting

__all__ = ["AdaLoss", "WeightEMA"]


class AdaLoss(keras.callbacks.Callback):
    """Re-weights the exits' losses so that each counts on the same scale.

    AdaLoss minimises sum_i log(E[loss_i]); its gradient weights exit i by 1/E[loss_i].
    The rule, as in the authors' tensorpack code (`AdaptiveLossWeight`):

    - every training step with finite losses l (K,):
      `avg <- l` on the first step, else `avg <- momentum * avg + (1 - momentum) * l`;
    - every `update_every` such steps:
      `v = 1 / (avg + epsilon)`, `v /= max(v)`, `v[K-1] += final_extra`, `v /= max(v)`,
      `w = (1 - gamma) * v + gamma`.
    Checked line by line against that code (`online_learn.py`, `AdaptiveLossWeight._after_run`
    in EchoWho/AnytimeNeuralNetwork_public): it too re-normalises after adding
    `final_extra`, so when the last exit already weighs most (its loss is the lowest) it
    stays at 1 and the others shrink by `1 / (1 + final_extra)` before the floor; it puts
    the epsilon after the inversion (`1 / avg + 1e-8`), a difference below float32
    precision. The weights are relative to the best-weighted exit (the largest is 1):
    `gamma` is a floor relative to it, not a share of a sum.
    Before the first update the weights are those given to `compile` (all 1 by default).

    The update runs inside the compiled training step (on TensorFlow and JAX), from the
    model's `exit_weighting` state; the new weights take effect from the next step.
    A step with a NaN or infinite loss leaves the state untouched and is counted; the
    callback warns once. The weights appear in `logs` as `adaloss_w_1 … adaloss_w_K`
    (per batch and per epoch), so History, CSVLogger and TensorBoard record them, and the
    state is saved with the model's weights, so `keras.callbacks.BackupAndRestore` and
    `.keras` files restore it on resume.

    Args:
        momentum: decay of the moving average of each exit's loss, in [0, 1). Defaults to
            0.9.
        gamma: floor mixed into every weight, in [0, 1]. Defaults to 0.07.
        final_extra: extra weight added to the last exit before re-normalising, >= 0.
            Defaults to 0.0.
        update_every: recompute the weights every this many steps, >= 1. Defaults to 100.
        epsilon: added to the averages before inverting, > 0. Defaults to 1e-8.

    Raises:
        ValueError: an argument outside its range.

    Example:
        model = keras_anytime.applications.AnytimeResNet(depth=20)
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, callbacks=[keras_anytime.callbacks.AdaLoss()])
    """

    def __init__(
        self,
        momentum: float = 0.9,
        gamma: float = 0.07,
        final_extra: float = 0.0,
        update_every: int = 100,
        epsilon: float = 1e-8,
    ):
        super().__init__()
        checks = [
            (0.0 <= momentum < 1.0, f"momentum must be in [0, 1), got {momentum}"),
            (0.0 <= gamma <= 1.0, f"gamma must be in [0, 1], got {gamma}"),
            (final_extra >= 0.0, f"final_extra must be >= 0, got {final_extra}"),
            (
                isinstance(update_every, (int, np.integer)) and update_every >= 1,
                f"update_every must be an integer >= 1, got {update_every!r}",
            ),
            (epsilon > 0.0, f"epsilon must be > 0, got {epsilon}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self.momentum = float(momentum)
        self.gamma = float(gamma)
        self.final_extra = float(final_extra)
        self.update_every = int(update_every)
        self.epsilon = float(epsilon)
        self._warned = False

    def update(self, state: ExitWeighting, exit_losses) -> None:
        """One step of the rule, in `keras.ops`; `AnytimeModel.compute_loss` calls it.

        Args:
            state: the model's `exit_weighting`, updated in place.
            exit_losses: this step's per-exit losses over the global batch, (K,).
        """
        k = state.num_exits
        live = ops.greater(ops.convert_to_tensor(state.active), 0.0)
        all_finite = ops.all(ops.isfinite(exit_losses))
        finite = ops.logical_and(live, all_finite)
        safe = ops.where(ops.isfinite(exit_losses), exit_losses, ops.zeros_like(exit_losses))
        avg = ops.convert_to_tensor(state.avg_losses)
        steps = ops.convert_to_tensor(state.steps)
        weights = ops.convert_to_tensor(state.weights_var)
        nonfinite = ops.convert_to_tensor(state.nonfinite_steps)
        moved = ops.where(
            ops.equal(steps, 0), safe, self.momentum * avg + (1.0 - self.momentum) * safe
        )
        new_avg = ops.where(finite, moved, avg)
        new_steps = steps + ops.cast(finite, "int32")

        v = 1.0 / (new_avg + self.epsilon)
        v = v / ops.max(v)
        v = v + self.final_extra * ops.convert_to_tensor(np.eye(k, dtype="float32")[k - 1])
        v = v / ops.max(v)
        proposed = (1.0 - self.gamma) * v + self.gamma
        due = ops.logical_and(finite, ops.equal(ops.mod(new_steps, self.update_every), 0))

        state.weights_var.assign(ops.where(due, proposed, weights))
        state.avg_losses.assign(new_avg)
        state.steps.assign(new_steps)
        bad = ops.logical_and(live, ops.logical_not(all_finite))
        state.nonfinite_steps.assign(nonfinite + ops.cast(bad, "int32"))

    def __eq__(self, other) -> bool:
        """Equal settings give the same compiled step (see AnytimeModel.set_loss_balancer)."""
        return isinstance(other, AdaLoss) and self._settings() == other._settings()

    def __hash__(self) -> int:
        return hash(self._settings())

    def _settings(self) -> tuple:
        return (self.momentum, self.gamma, self.final_extra, self.update_every, self.epsilon)

    def on_train_begin(self, logs=None):
        if not isinstance(self.model, AnytimeModel):
            raise TypeError(
                "AdaLoss needs a keras_anytime AnytimeModel (what the builders in "
                "keras_anytime.applications return); got "
                f"{type(self.model).__name__}. Wrap a functional multi-exit model as "
                "AnytimeModel(inputs, outputs)."
            )
        if self.model.num_exits < 2:
            raise ValueError("AdaLoss balances several exits; this model has one output.")
        self.model.set_loss_balancer(self)

    def on_epoch_end(self, epoch, logs=None):
        # evaluate() reports the weights too; they are training state, not a val metric
        for key in [key for key in logs or {} if key.startswith("val_adaloss_w_")]:
            del logs[key]
        bad = int(ops.convert_to_numpy(self.model.exit_weighting.nonfinite_steps))
        if bad and not self._warned:
            self._warned = True
            warnings.warn(
                f"AdaLoss: {bad} training step(s) had a NaN or infinite exit loss; their "
                "losses were left out of the moving averages. Lower the learning rate or "
                "check the inputs.",
                RuntimeWarning,
                stacklevel=2,
            )

    def on_train_end(self, logs=None):
        self.model.set_loss_balancer(None)


class WeightEMA(keras.callbacks.Callback):
    """An exponential moving average of every float weight, BatchNorm's statistics included.

    After every training step `avg <- m * avg + (1 - m) * w` for each trainable weight and
    each non-trainable float one, with `m = min(momentum, (1 + t) / (10 + t))` at step `t`
    (the warm-up of `tf.train.ExponentialMovingAverage`'s `num_updates`), so the first
    epochs do not average in the initialisation. Averaging the BatchNorm statistics with
    the kernels, as timm's `ModelEmaV2` averages a module's whole state, keeps the two
    consistent. Keras's optimizer EMA (`use_ema`) averages the trainable variables only, so
    its averaged kernels run with the BatchNorm statistics of the current ones, which do
    not fit them (benchmarks/README.md, "At 60 epochs").

    Validation runs with the average (swapped in at `on_test_begin`, out at `on_test_end`).
    At every epoch's end the average is written to `path` (with the step count), then
    swapped in for the callbacks after this one (checkpoint, log) and swapped out at the
    next epoch's start; training ends with the average in the model. Put this callback
    after `keras.callbacks.BackupAndRestore`, which must save the trained weights; a
    resumed run reads `path` back in `on_train_begin` and goes on with the same average.

    Args:
        momentum: decay of the average per step, in (0, 1). Defaults to 0.999.
        path: an `.npz` file that keeps the average between runs. Defaults to None (none
            kept).

    Raises:
        ValueError: `momentum` outside (0, 1).
    """

    def __init__(self, momentum: float = 0.999, path: str | Path | None = None):
        super().__init__()
        if not 0.0 < momentum < 1.0:
            raise ValueError(f"momentum must be in (0, 1), got {momentum}.")
        self.momentum = float(momentum)
        self.path = Path(path) if path is not None else None
        self._variables: list = []
        self._average: list[np.ndarray] = []
        self._steps, self._swapped = 0, False

    def on_train_begin(self, logs=None):
        # model.weights: the layers' variables, not the optimizer's or AdaLoss's state
        self._variables = [v for v in self.model.weights if "float" in str(v.dtype)]
        self._average = [
            np.array(ops.convert_to_numpy(v), dtype="float32") for v in self._variables
        ]
        self._steps, self._swapped = 0, False
        if self.path is not None and self.path.is_file():
            self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path) as saved:
                steps = int(saved["steps"])
                average = [saved[f"w{i}"] for i in range(len(saved.files) - 1)]
        except Exception as err:
            raise ValueError(
                f"{self.path} is not a readable weight average ({err}). Delete it to start "
                "the average afresh from the current weights."
            ) from err
        shapes = [tuple(v.shape) for v in self._variables]
        if [a.shape for a in average] != shapes:
            raise ValueError(
                f"{self.path} holds an average of {len(average)} weights that does not match "
                f"this model's {len(shapes)} float weights (another model or configuration). "
                "Delete it, or resume with the model that wrote it."
            )
        self._average, self._steps = average, steps

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        m = min(self.momentum, (1.0 + self._steps) / (10.0 + self._steps))
        for average, v in zip(self._average, self._variables):
            average *= m
            average += (1.0 - m) * ops.convert_to_numpy(v)

    def _swap(self) -> None:
        for i, v in enumerate(self._variables):
            current = np.array(ops.convert_to_numpy(v), dtype="float32")
            v.assign(self._average[i])
            self._average[i] = current
        self._swapped = not self._swapped

    def on_test_begin(self, logs=None):
        if not self._swapped:
            self._swap()

    def on_test_end(self, logs=None):
        if self._swapped:
            self._swap()

    def on_epoch_begin(self, epoch, logs=None):
        if self._swapped:
            self._swap()

    def on_epoch_end(self, epoch, logs=None):
        if self.path is not None:
            arrays = {f"w{i}": a for i, a in enumerate(self._average)}
            partial = self.path.with_name(self.path.name + ".partial")
            with open(partial, "wb") as f:
                np.savez(f, steps=self._steps, **arrays)
            partial.replace(self.path)  # a crash mid-write leaves the last average whole
        self._swap()
