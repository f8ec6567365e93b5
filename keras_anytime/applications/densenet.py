"""AnytimeDenseNet: DenseNet-BC with exits along its depth.

References:
- Huang et al., "Densely Connected Convolutional Networks", CVPR 2017 (arXiv 1608.06993):
  DenseNet-BC, bottleneck units BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3 conv (k), transitions
  BN-ReLU-1x1 conv (compression 0.5)-2x2 average pooling.
- Hu et al., "Learning Anytime Predictions in Neural Networks via Adaptive Loss
  Balancing", AAAI 2019 (arXiv 1708.06832): exits on a DenseNet trunk.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers

from keras_anytime.applications import base
from keras_anytime.models import AnytimeModel

__all__ = [
    "IMAGENET_BLOCKS",
    "AnytimeDenseNet",
    "AnytimeDenseNetBC100",
    "dense_unit",
    "transition",
]

# ImageNet form: units per dense block (Huang et al., Table 1); growth rate 32.
IMAGENET_BLOCKS = {
    121: [6, 12, 24, 16],
    169: [6, 12, 32, 32],
    201: [6, 12, 48, 32],
}


def _dropout(x, rate: float, name: str):
    return layers.Dropout(rate, name=name)(x) if rate else x


def dense_unit(x, growth_rate: int, dropout: float, name: str):
    """Bottleneck unit: BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3 conv (k), concatenated to `x`.

    Args:
        x: the unit's input, (h, w, c); the unit outputs (h, w, c + k).
        growth_rate: k, the channels the unit adds.
        dropout: rate of a Dropout after each convolution; 0 for none.
        name: the prefix of the unit's layer names.
    """
    y = base.bn_relu(x, f"{name}_1")
    y = _dropout(base.conv(y, 4 * growth_rate, 1, name=f"{name}_1_conv"), dropout, f"{name}_1_drop")
    y = base.bn_relu(y, f"{name}_2")
    y = _dropout(base.conv(y, growth_rate, 3, name=f"{name}_2_conv"), dropout, f"{name}_2_drop")
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def transition(x, compression: float, dropout: float, name: str):
    """Transition between dense blocks: BN-ReLU-1x1 conv-2x2/2 average pooling.

    Args:
        x: the block's output, (h, w, c); the transition outputs (h // 2, w // 2,
            floor(compression * c)).
        compression: the fraction of the channels the 1x1 convolution keeps.
        dropout: rate of a Dropout after the convolution; 0 for none.
        name: the prefix of the transition's layer names.
    """
    y = base.bn_relu(x, name)
    filters = max(1, int(compression * x.shape[-1]))
    y = _dropout(base.conv(y, filters, 1, name=f"{name}_conv"), dropout, f"{name}_drop")
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(y)


def _depth_error(depth) -> str:
    return (
        f"depth={depth!r} is not a DenseNet-BC depth: use 6n+4 with n >= 1 for the CIFAR "
        f"form (40, 100, 190) or one of {sorted(IMAGENET_BLOCKS)} for the ImageNet form."
    )


@base.shared_docstring
def AnytimeDenseNet(
    depth: int = 100,
    growth_rate: int | None = None,
    exit_every: int = 1,
    include_top: bool = True,
    weights: str | None = None,
    input_tensor=None,
    input_shape: Sequence[int | None] | None = None,
    pooling: str | None = None,
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    *,
    variant: str | None = None,
    compression: float = 0.5,
    dropout: float = 0.0,
    include_preprocessing: bool = True,
) -> AnytimeModel:
    """Anytime DenseNet-BC with an exit every `exit_every` dense units.

    Forms:
      CIFAR (`depth = 6n + 4`): 3x3 stem of 2k channels, then 3 dense blocks of n units
        at 32, 16 and 8 pixels (for 32-pixel inputs), joined by 2 transitions. k
        (`growth_rate`) defaults to 12: DenseNet-BC-100 (k=12) has 48 units.
        Default input (32, 32, 3).
      ImageNet (`depth` 121/169/201): 7x7/2 stem of 2k channels, BN-ReLU, 3x3/2 max
        pool, then 4 dense blocks joined by 3 transitions; k defaults to 32.
        Default input (224, 224, 3).
    Units: BN-ReLU-1x1 conv (4k)-BN-ReLU-3x3 conv (k), output concatenated to the input.
    Transitions: BN-ReLU-1x1 conv to floor(compression * c) channels-2x2 average pool.

    Exits: unit u has one when (U - u) % exit_every == 0, U the number of units, so the
    last unit always has one. Each head is BN-ReLU, global average pooling,
    Dense(classes); it reads the unit's concatenated output.

    Args:
        depth: 6n + 4 (CIFAR form) or 121, 169, 201 (ImageNet form). Defaults to 100.
        growth_rate: k, the channels every unit adds. Defaults to None: 12 (CIFAR), 32
            (ImageNet).
        exit_every: an exit every this many units, counted back from the last. Defaults
            to 1 (an exit after every unit).
        {shared arguments}
        variant: "cifar" or "imagenet" to force the form. Defaults to None (the depth
            decides).
        compression: channel fraction kept by each transition, in (0, 1]. Defaults to 0.5.
        dropout: rate of a Dropout after every convolution but the stem (the paper's
            0.2 without data augmentation). Defaults to 0.0 (none).

    Returns:
        An `AnytimeModel`.

    Raises:
        ValueError: a depth of no form, `compression` outside (0, 1], `dropout` outside
            [0, 1), a growth rate, `classes` or `exit_every` below 1, an input too small
            for the depth, or a shared argument keras.applications refuses.
    """
    shape = base.checked_input_shape(
        input_tensor,
        input_shape,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    cifar = isinstance(depth, int) and depth >= 10 and (depth - 4) % 6 == 0
    variant = base.pick_variant(
        variant,
        shape,
        cifar=cifar,
        imagenet=depth in IMAGENET_BLOCKS,
        depth_error=_depth_error(depth),
    )
    imagenet = variant == "imagenet"
    growth_rate = base.positive_int(
        growth_rate if growth_rate is not None else (32 if imagenet else 12), "growth_rate"
    )
    base.positive_int(classes, "classes")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1], got {compression!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    block_units = IMAGENET_BLOCKS[depth] if imagenet else [(depth - 4) // 6] * 3
    exits = set(base.exit_units(sum(block_units), exit_every))

    inputs, x = base.model_input(
        input_tensor, shape, 224 if imagenet else 32, include_top=include_top
    )
    # Each transition halves the map (valid 2x2 pooling); the last block needs >= 1x1.
    base.check_min_size(x, 32 if imagenet else 4, f"AnytimeDenseNet-{depth} ({variant} form)")
    if include_preprocessing:
        x = base.preprocessing(x, imagenet)
    if imagenet:
        x = base.conv_bn_relu(x, 2 * growth_rate, 7, 2, name="stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = base.conv(x, 2 * growth_rate, 3, name="stem_conv")

    features, u = [], 0
    for block, units in enumerate(block_units, start=1):
        if block > 1:
            x = transition(x, compression, dropout, name=f"transition{block - 1}")
        for i in range(units):
            u += 1
            x = dense_unit(x, growth_rate, dropout, name=f"block{block}_unit{i + 1}")
            if u in exits:
                features.append(x)

    def head(x, index, n_classes):
        return base.exit_head(x, index, n_classes, classifier_activation)

    config = {
        "depth": depth,
        "growth_rate": growth_rate,
        "exit_every": exit_every,
        "variant": variant,
        "compression": compression,
        "dropout": dropout,
        "include_preprocessing": include_preprocessing,
    }
    return base.finish(
        inputs,
        features,
        head,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classes=classes,
        builder="AnytimeDenseNet",
        config=config,
        name=name or f"anytime_densenet{depth}",
    )


def AnytimeDenseNetBC100(**kwargs) -> AnytimeModel:
    """`AnytimeDenseNet(depth=100, growth_rate=12, **kwargs)`: DenseNet-BC-100 (k=12).

    The CIFAR form, 48 dense units (48 exits at exit_every=1).
    """
    return AnytimeDenseNet(depth=100, growth_rate=12, **kwargs)
