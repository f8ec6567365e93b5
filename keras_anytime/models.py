"""`AnytimeModel`: a functional Keras model with one output per exit.

It differs from a plain functional model in three ways, all about training:

- A single label array (or a `(image, label)` dataset) feeds every exit, and a single
  loss or a flat metrics list is applied to every exit.
- The per-exit loss weights live in the model as state (`exit_weighting`), not as Python
  floats baked into the compiled step. The weighted total is computed in `compute_loss`
  from that state, so a balancer such as `callbacks.AdaLoss` can change the weights
  inside the training step on any backend, with no retracing.
- That state is saved with the model's weights, so checkpoints and
  `keras.callbacks.BackupAndRestore` restore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import keras
import numpy as np
from keras import ops

from keras_anytime import _tf_distribute

__all__ = ["AnytimeModel", "ExitWeighting", "LossBalancer", "truncate"]


class LossBalancer(Protocol):
    """What `AnytimeModel` asks of a loss balancer (see `callbacks.AdaLoss`)."""

    def update(self, state: ExitWeighting, exit_losses: Any) -> None:
        """Update `state` in the training step from this step's per-exit losses.

        Args:
            state: the model's `exit_weighting`, to update in place.
            exit_losses: this step's per-exit losses over the global batch, (K,).
        """


class ExitWeighting(keras.metrics.Metric):
    """Per-exit loss weights and the statistics a balancer keeps about the losses.

    Variables (shape (K,) or scalar):
      weights: float32, the loss weight of each exit, used by the next training step.
      avg_losses: float32, moving average of each exit's loss (AdaLoss).
      steps: int32, training steps with finite losses seen so far.
      nonfinite_steps: int32, training steps whose losses were NaN or infinite.
      active: float32, 1 while the balancer is in use (during `fit` with it), else 0.

    It is a `Metric` so that its variables are carried through the training step on
    every backend, and its `result()` puts the weights in `logs` (`adaloss_w_1 …
    adaloss_w_K`) once a balancer has been installed. `reset_state` does nothing: the state
    persists across epochs and is training state, not an epoch statistic.

    The `aggregation` settings serve tf.distribute, where each replica holds a copy. Under
    `keras.distribution.DataParallel` (JAX) the variables are replicated like the weights,
    and the step computes them once, from the losses over the whole batch.

    Args:
        num_exits: K, the model's number of exits.
        name: the metric's name. Defaults to "exit_weighting".
        **kwargs: passed to `keras.metrics.Metric`.
    """

    def __init__(self, num_exits: int, name: str = "exit_weighting", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_exits = num_exits
        self.log_weights = False
        self.weights_var = self.add_variable(
            shape=(num_exits,), initializer="ones", name="weights", aggregation="mean"
        )
        self.avg_losses = self.add_variable(
            shape=(num_exits,), initializer="zeros", name="avg_losses", aggregation="mean"
        )
        # Step counters are int32: a float32 count stops at 2**24 steps. Every replica
        # counts the same steps, so the first replica's value is the value.
        self.steps = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int32",
            name="steps",
            aggregation="only_first_replica",
        )
        self.nonfinite_steps = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int32",
            name="nonfinite_steps",
            aggregation="only_first_replica",
        )
        self.active = self.add_variable(
            shape=(), initializer="zeros", name="active", aggregation="mean"
        )

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(
            "ExitWeighting is updated by a loss balancer (callbacks.AdaLoss), not by update_state."
        )

    def reset_state(self):
        """Keep the state across epochs (Keras calls this at every epoch start)."""

    def result(self) -> dict:
        if not self.log_weights:
            return {}
        return {f"adaloss_w_{i + 1}": self.weights_var[i] for i in range(self.num_exits)}

    def get_config(self) -> dict:
        return {"num_exits": self.num_exits, "name": self.name}


class _FunctionLoss(keras.losses.Loss):
    """A loss function `fn(y_true, y_pred) -> (batch,)` as a `Loss` object."""

    def __init__(self, fn, name: str | None = None):
        super().__init__(name=name or fn.__name__)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _as_loss(identifier) -> keras.losses.Loss:
    loss = keras.losses.get(identifier)
    if isinstance(loss, keras.losses.Loss):
        return loss
    if callable(loss):
        return _FunctionLoss(loss)
    raise ValueError(f"Unknown loss {identifier!r}: pass a keras.losses name, function or Loss.")


def _per_exit_losses(loss, num_exits: int) -> list:
    """One loss for every exit, or a list of one loss per exit."""
    if isinstance(loss, dict):
        raise ValueError(f"Pass `loss` as one loss or a list of {num_exits}, not a dict.")
    if isinstance(loss, (list, tuple)):
        if len(loss) != num_exits:
            raise ValueError(
                f"`loss` has {len(loss)} entries but the model has {num_exits} exits: pass "
                f"one loss for every exit or a list of {num_exits}."
            )
        return list(loss)
    return [loss] * num_exits


def _clone_metric(metric):
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config(metric.get_config())
    return metric


@keras.saving.register_keras_serializable(package="keras_anytime")
class AnytimeModel(keras.Model):
    """A functional model whose outputs are exits, ordered shallow to deep.

    Build it like a functional model, `AnytimeModel(inputs, [exit_1, ..., exit_K])`;
    the builders in `keras_anytime.applications` return one.

    Args:
        *args: the functional model's arguments, `inputs` and `outputs` (the exits).
        builder_config: (builder name, config) of the builder that made the model, e.g.
            `("AnytimeResNet", {"depth": 20, ...})`; `get_config` saves it, so a reloaded
            `.keras` model keeps it. Defaults to None: a model made otherwise (`truncate`,
            `attach`, by hand) or saved without one.
        **kwargs: the functional model's other arguments, such as `name`.

    `compile(optimizer, loss, loss_weights=None, metrics=None)`:
      loss: one loss for every exit, or a list of K.
      loss_weights: a list of K floats (for example from `keras_anytime.weighting`);
        all 1 when omitted. Stored in `exit_weighting.weights_var`.
      metrics: a flat list (applied to every exit, logged as `exit_3_accuracy`) or a
        list of K lists.
    The logged `loss` is sum_i w_i * loss_i (plus regularisation); `exit_i_loss` are the
    unweighted per-exit losses.

    Raises:
        ValueError: a `builder_config` that is not a (name, dict) pair.

    Example:

    ```python
    inputs = keras.Input((32, 32, 3))
    hidden = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(inputs))
    exit_1 = keras.layers.Dense(10, activation="softmax", name="exit_1")(hidden)
    hidden = keras.layers.Dense(64, activation="relu")(hidden)
    exit_2 = keras.layers.Dense(10, activation="softmax", name="exit_2")(hidden)
    model = AnytimeModel(inputs, [exit_1, exit_2])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, callbacks=[keras_anytime.AdaLoss()])  # one label array
    ```
    """

    def __init__(self, *args, builder_config: Sequence | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.exit_weighting = ExitWeighting(len(self.outputs))
        self.exit_loss_trackers = [
            keras.metrics.Mean(name=f"{name}_loss") for name in self.output_names
        ]
        self.loss_balancer: LossBalancer | None = None
        self.builder_config = _builder_pair(builder_config)
        self._user_loss = None
        self._exit_losses: list[keras.losses.Loss] | None = None

    @property
    def num_exits(self) -> int:
        return len(self.outputs)

    def get_config(self) -> dict:
        config = super().get_config()
        if self.builder_config is not None:
            # a list: a tuple would be saved as a "__tuple__" object, not revived for __init__
            builder, builder_kwargs = self.builder_config
            config["builder_config"] = [builder, dict(builder_kwargs)]
        return config

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, **kwargs):
        k = self.num_exits
        if metrics is not None:
            if isinstance(metrics, (list, tuple)) and all(
                isinstance(m, (list, tuple)) for m in metrics
            ):
                if len(metrics) != k:
                    raise ValueError(f"`metrics` has {len(metrics)} lists for {k} exits.")
            else:
                flat = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
                metrics = [[_clone_metric(m) for m in flat] for _ in range(k)]
        # The loss stays out of Keras's CompileLoss: compute_loss applies it per exit.
        super().compile(optimizer=optimizer, loss=None, metrics=metrics, **kwargs)
        self._user_loss = loss
        self._exit_losses = (
            None if loss is None else [_as_loss(x) for x in _per_exit_losses(loss, k)]
        )
        self.set_loss_weights(np.ones(k) if loss_weights is None else loss_weights)

    def get_compile_config(self) -> dict | None:
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = keras.saving.serialize_keras_object(self._user_loss)
            config["loss_weights"] = [float(w) for w in np.array(self.exit_weighting.weights_var)]
        return config

    def compile_from_config(self, config):
        """Re-compile from a saved `.keras` file's compile config."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def set_loss_weights(self, weights: Sequence[float]) -> None:
        """Set the per-exit loss weights used from the next training step on.

        Args:
            weights: K finite non-negative floats, one per exit.

        Raises:
            ValueError: not K finite non-negative floats.
        """
        w = np.asarray(weights, dtype="float32").reshape(-1)
        if w.shape != (self.num_exits,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"loss_weights must be {self.num_exits} finite non-negative floats, one per "
                f"exit; got {list(np.asarray(weights).reshape(-1))}."
            )
        self.exit_weighting.weights_var.assign(w)

    def set_loss_balancer(self, balancer: LossBalancer | None) -> None:
        """Switch a balancer that updates the weights in the training step on or off.

        The balancer's settings are constants of the compiled step: installing one with
        other settings rebuilds the training function once; switching the same one on and
        off (every `fit` with `callbacks.AdaLoss`) only flips `exit_weighting.active`.

        Args:
            balancer: a `LossBalancer` such as `callbacks.AdaLoss` to switch on, or None
                to switch the balancing off.
        """
        if balancer is not None and balancer != self.loss_balancer:
            self.loss_balancer = balancer
            self.exit_weighting.log_weights = True
            if self.train_function is not None:
                self.make_train_function(force=True)
        self.exit_weighting.active.assign(0.0 if balancer is None else 1.0)

    def _labels_for_every_exit(self, y, y_pred):
        if isinstance(y_pred, (list, tuple)) and not isinstance(y, (list, tuple, dict)):
            return [y] * len(y_pred)
        return y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self._exit_losses is None:
            raise ValueError("No loss to compute: pass `loss` to compile().")
        y_pred = list(y_pred) if isinstance(y_pred, (list, tuple)) else [y_pred]
        y = self._labels_for_every_exit(y, y_pred)
        if isinstance(y, dict):
            y = [y[name] for name in self.output_names]
        y = y if isinstance(y, (list, tuple)) else [y]
        if len(y) != len(y_pred):
            raise ValueError(
                f"Got {len(y)} label arrays for {len(y_pred)} exits: pass one label array "
                "(used by every exit) or one per exit."
            )
        exit_losses = ops.stack(
            [
                ops.cast(fn(y_t, ops.cast(y_p, "float32"), sample_weight), "float32")
                for fn, y_t, y_p in zip(self._exit_losses, y, y_pred)
            ]
        )
        true_losses = _tf_distribute.global_mean(ops.stop_gradient(exit_losses))
        batch = ops.shape(y_pred[0])[0]
        for i, tracker in enumerate(self.exit_loss_trackers):
            tracker.update_state(true_losses[i], sample_weight=batch)
        # A copy: the balancer assigns the variable in place below, before the backward
        # pass, which on torch would invalidate a tensor that shares its storage.
        weights = ops.stop_gradient(ops.copy(self.exit_weighting.weights_var))
        total = ops.sum(weights * exit_losses)
        if training and self.loss_balancer is not None:
            self.loss_balancer.update(self.exit_weighting, true_losses)
        for extra in self.losses:  # regularisers: summed over replicas like the data losses
            total = total + _tf_distribute.scaled_for_replicas(ops.cast(ops.sum(extra), "float32"))
        return total

    def train_step(self, *args, **kwargs):
        return _tf_distribute.rank1_logs_under_multiworker(super().train_step(*args, **kwargs))

    def test_step(self, *args, **kwargs):
        return _tf_distribute.rank1_logs_under_multiworker(super().test_step(*args, **kwargs))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(
            x, self._labels_for_every_exit(y, y_pred), y_pred, sample_weight
        )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # under tf.distribute, build from the local replica's first batch: Keras's own
        # reduction of it fails under MultiWorkerMirroredStrategy (_tf_distribute)
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is not None and strategy is not None:
            data_batch = _tf_distribute.local_first_batch(strategy, iterator, data_batch)
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # The weighting state is saved beside the model's own variables, so `.keras` files,
    # `save_weights` and `BackupAndRestore` keep it.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        for v in self.exit_weighting.variables:
            store[f"exit_weighting_{v.name}"] = v

    def load_own_variables(self, store):
        for v in self.exit_weighting.variables:
            key = f"exit_weighting_{v.name}"
            if key in store.keys():  # files of 0.1 hold float32 step counts
                v.assign(np.asarray(store[key]).astype(v.dtype))
        own = {k: store[k] for k in store.keys() if not k.startswith("exit_weighting_")}
        super().load_own_variables(own)


def _builder_pair(builder_config) -> tuple[str, dict] | None:
    """`builder_config` as a (builder name, config) tuple; None stays None."""
    if builder_config is None:
        return None
    if not (
        isinstance(builder_config, (list, tuple))
        and len(builder_config) == 2
        and isinstance(builder_config[0], str)
        and isinstance(builder_config[1], dict)
    ):
        raise ValueError(
            "builder_config must be a (builder name, config dict) pair such as "
            f'("AnytimeResNet", {{"depth": 20}}), or None; got {builder_config!r}.'
        )
    return builder_config[0], dict(builder_config[1])


def truncate(model: AnytimeModel, num_exits: int) -> AnytimeModel:
    """The network up to exit `num_exits` as its own AnytimeModel, sharing `model`'s layers.

    The layers past that exit are not computed. The OPT baselines train it as a
    single-exit network (`weighting.opt`). It has no `builder_config`: no builder makes it.

    Args:
        model: the anytime model to cut.
        num_exits: the last exit kept, 1-based.

    Raises:
        ValueError: `num_exits` is not in 1..K.
    """
    if not isinstance(num_exits, int) or not 1 <= num_exits <= model.num_exits:
        raise ValueError(f"`num_exits` must be in 1..{model.num_exits}, got {num_exits!r}.")
    return AnytimeModel(model.inputs, model.outputs[:num_exits], name=model.name)
