"""Training recipes: optimiser and learning-rate schedule, as code.

- `paper`: the CIFAR recipe of Hu et al.'s code (EchoWho/AnytimeNeuralNetwork_public,
  `anytime_models/examples/ann_app_utils.py`, `cifar_svhn_train_or_test`; the weight decay
  in `anytime_models/models/anytime_network.py`): 300 epochs at batch 128, SGD with
  momentum 0.9 (no Nesterov), lr 0.1, 0.01 from epoch 140, 0.001 from epoch 210 and 0.0002
  from epoch 250 (0-based: tensorpack's `ScheduledHyperParamSetter` sets a value after the
  epoch it names ends), pad-4 crop and flip. For CIFAR that code forces
  `regularize_coef="decay"`: a decay factor of 2e-4 times `tf.nn.l2_loss` (halved sum of
  squares) on the conv kernels and the heads, which only decays after 480,000 steps, past
  the end of 300 epochs. That is the builders' own `L2(1e-4)` exactly. Over another number
  of epochs the drops keep their fractions of training (140/300, 210/300, 250/300).
- `step`: He et al.'s CIFAR ResNet recipe: the same SGD at lr 0.1 per 128 images, divided
  by 10 at 50% and 75% of training.
- `short`: for few epochs on CPUs: the same SGD (Nesterov), linear warm-up over the first
  epoch (at most a tenth of training), then cosine decay to 0, from a peak of 1.6 per 128
  images, the best peak of a sweep at a 5-epoch budget (benchmarks/README.md, "The `short`
  recipe").
- `fast`: `short`'s schedule for a few tens of epochs: peak lr 0.8 per 128 images and
  decoupled weight decay 5e-4 on the kernels on top of the builders' L2 (benchmarks/README.md,
  "Recipe ablation"). Label smoothing is off: it changes the confidences that early exit
  thresholds.
No recipe keeps an average of the weights (`train --ema`, `callbacks.WeightEMA`), and every
recipe keeps the builders' own kernel L2 (`set_kernel_l2`, `train --l2` change it).
The default learning rate scales linearly with the batch size.

`keras_anytime.hardware` holds a run's precision and XLA choice; its names can be imported
from here too (`recipes.resolve_precision`, ...).
"""

from __future__ import annotations

import keras

from keras_anytime.hardware import (
    JIT_COMPILES,
    PRECISIONS,
    cpu_has_bfloat16,
    has_gpu,
    resolve_jit_compile,
    resolve_precision,
    set_mixed_precision,
)

__all__ = [
    "EMA",
    "JIT_COMPILES",
    "KERNEL_L2",
    "LABEL_SMOOTHING",
    "PAPER_DROPS",
    "PEAK_LR",
    "PRECISIONS",
    "RECIPES",
    "STEP_DROPS",
    "WEIGHT_DECAY",
    "cpu_has_bfloat16",
    "has_gpu",
    "learning_rate",
    "optimizer",
    "resolve_jit_compile",
    "resolve_precision",
    "set_kernel_l2",
    "set_mixed_precision",
]

RECIPES = ("paper", "step", "short", "fast")
PEAK_LR = {"paper": 0.1, "step": 0.1, "short": 1.6, "fast": 0.8}  # per 128 images
# decoupled weight decay on the kernels (on top of the builders' L2) and label smoothing
WEIGHT_DECAY = {"paper": 0.0, "step": 0.0, "short": 0.0, "fast": 5e-4}
LABEL_SMOOTHING = {"paper": 0.0, "step": 0.0, "short": 0.0, "fast": 0.0}
# momentum of an exponential moving average of the trainable weights (0: none)
EMA = {"paper": 0.0, "step": 0.0, "short": 0.0, "fast": 0.0}
# factor of the kernels' L2 regulariser (None: the builders' own, applications.base.L2)
KERNEL_L2 = {"paper": None, "step": None, "short": None, "fast": None}
# piecewise-constant recipes: (fraction of training, factor of the peak) from each drop on
PAPER_DROPS = ((140 / 300, 0.1), (210 / 300, 0.01), (250 / 300, 0.002))
STEP_DROPS = ((0.5, 0.1), (0.75, 0.01))


def learning_rate(
    recipe: str, epochs: int, steps_per_epoch: int, batch_size: int = 128, lr: float | None = None
) -> keras.optimizers.schedules.LearningRateSchedule:
    """The recipe's learning rate per step over `epochs * steps_per_epoch` steps.

    Args:
        recipe: one of `RECIPES`.
        epochs: the length of training, >= 1; the schedule's drops and decay follow it.
        steps_per_epoch: training steps per epoch, >= 1.
        batch_size: images per step; the default peak scales linearly with it. Defaults
            to 128.
        lr: the peak learning rate. Defaults to None (`PEAK_LR[recipe] * batch_size /
            128`).

    Raises:
        ValueError: an unknown recipe, or `epochs` or `steps_per_epoch` below 1.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}: use one of {RECIPES}.")
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError("epochs and steps_per_epoch must be >= 1.")
    peak = lr if lr is not None else PEAK_LR[recipe] * batch_size / 128
    total = epochs * steps_per_epoch
    if recipe in ("paper", "step"):
        drops = PAPER_DROPS if recipe == "paper" else STEP_DROPS
        # a drop at epoch e applies from that epoch's first step, whose iteration count is
        # e * steps_per_epoch; the schedule keeps the earlier value up to its boundary
        boundaries = [
            max(1, round(epochs * fraction)) * steps_per_epoch - 1 for fraction, _ in drops
        ]
        values = [peak] + [peak * factor for _, factor in drops]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    warmup = min(steps_per_epoch, total // 10) if epochs > 1 else 0
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=total - warmup,
        alpha=0.0,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def optimizer(
    recipe: str,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int = 128,
    lr: float | None = None,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """SGD with momentum 0.9 (Nesterov for `short` and `fast`) on the recipe's schedule.

    An average of the weights is `callbacks.WeightEMA`'s, not the optimizer's (`use_ema`
    leaves BatchNorm's statistics out).

    Args:
        recipe: one of `RECIPES`.
        epochs: the length of training, >= 1.
        steps_per_epoch: training steps per epoch, >= 1.
        batch_size: images per step. Defaults to 128.
        lr: the peak learning rate. Defaults to None (the recipe's, see `learning_rate`).
        weight_decay: decoupled weight decay (each step, `w -= lr * weight_decay * w`) on
            the kernels, not on BatchNorm parameters or biases, on top of the builders'
            L2. Defaults to 0.0 (none).

    Raises:
        ValueError: a negative `weight_decay`, or what `learning_rate` refuses.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    schedule = learning_rate(recipe, epochs, steps_per_epoch, batch_size, lr)
    sgd = keras.optimizers.SGD(
        schedule,
        momentum=0.9,
        nesterov=recipe in ("short", "fast"),
        weight_decay=weight_decay or None,
    )
    if weight_decay:
        sgd.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return sgd


def set_kernel_l2(model: keras.Model, l2: float) -> int:
    """Replace every `keras.regularizers.L2` kernel regulariser in `model` by `L2(l2)`.

    Nested models are included; kernels without an L2 regulariser keep none. Call it
    before `compile`. The layers' configs follow, so a saved model keeps the new factor.

    Args:
        model: the model whose layers change in place.
        l2: the new factor, >= 0; 0 removes the regularisers.

    Returns:
        How many kernels changed.

    Raises:
        ValueError: a negative (or NaN) `l2`.
    """
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}.")
    regularizer = keras.regularizers.L2(l2) if l2 else None
    changed, stack = 0, list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
            continue
        if isinstance(getattr(layer, "kernel_regularizer", None), keras.regularizers.L2):
            layer.kernel_regularizer = regularizer
            layer.kernel.regularizer = regularizer
            changed += 1
    return changed
