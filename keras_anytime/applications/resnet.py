"""AnytimeResNet: the paper's ResANN, a pre-activation ResNet with exits along its depth.

References:
- Hu et al., "Learning Anytime Predictions in Neural Networks via Adaptive Loss
  Balancing", AAAI 2019 (arXiv 1708.06832): ResANN.
- He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016: the
  pre-activation unit (BN-ReLU-conv), so every exit head starts with its own BN-ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras import layers

from keras_anytime.applications import base
from keras_anytime.models import AnytimeModel

__all__ = [
    "IMAGENET_STAGES",
    "AnytimeResNet",
    "AnytimeResNet20",
    "AnytimeResNet32",
    "AnytimeResNet56",
    "AnytimeResNet110",
    "basic_unit",
    "bottleneck_unit",
    "resolve_variant",
]

# ImageNet form: units per stage and unit type (He et al., CVPR 2016, Table 1).
IMAGENET_STAGES = {
    18: ([2, 2, 2, 2], "basic"),
    34: ([3, 4, 6, 3], "basic"),
    50: ([3, 4, 6, 3], "bottleneck"),
    101: ([3, 4, 23, 3], "bottleneck"),
    152: ([3, 8, 36, 3], "bottleneck"),
}


def basic_unit(x, filters: int, strides: int, name: str):
    """Pre-activation basic unit: BN-ReLU-conv3x3-BN-ReLU-conv3x3, plus the shortcut.

    Args:
        x: the unit's input feature map.
        filters: the output channels.
        strides: the first convolution's stride (2 starts a stage).
        name: the prefix of the unit's layer names.
    """
    preact = base.bn_relu(x, f"{name}_preact")
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = base.conv(preact, filters, 1, strides, name=f"{name}_shortcut")
    y = base.conv(preact, filters, 3, strides, name=f"{name}_conv1")
    y = base.bn_relu(y, f"{name}_2")
    y = base.conv(y, filters, 3, name=f"{name}_conv2")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def bottleneck_unit(x, filters: int, strides: int, name: str):
    """Pre-activation bottleneck unit: 1x1 (filters), 3x3 (filters), 1x1 (4 * filters).

    Args:
        x: the unit's input feature map.
        filters: the inner channels; the unit outputs 4 * filters.
        strides: the 3x3 convolution's stride (2 starts a stage).
        name: the prefix of the unit's layer names.
    """
    preact = base.bn_relu(x, f"{name}_preact")
    shortcut = x
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = base.conv(preact, 4 * filters, 1, strides, name=f"{name}_shortcut")
    y = base.conv(preact, filters, 1, name=f"{name}_conv1")
    y = base.bn_relu(y, f"{name}_2")
    y = base.conv(y, filters, 3, strides, name=f"{name}_conv2")
    y = base.bn_relu(y, f"{name}_3")
    y = base.conv(y, 4 * filters, 1, name=f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([shortcut, y])


def resolve_variant(depth: int, variant: str | None, input_shape) -> str:
    """The form of a ResNet depth: "cifar" for 6n+2, "imagenet" for 18/34/50/101/152.

    Args:
        depth: the network's depth; 50 and 152 fit both forms.
        variant: "cifar" or "imagenet" to force the form, None to pick it from the depth
            (for a depth of both forms, "cifar" for inputs of at most 64 pixels).
        input_shape: the input's (height, width, channels), or None.

    Raises:
        ValueError: `depth` is no ResNet depth, or not one of the form `variant` asks for.
    """
    return base.pick_variant(
        variant,
        input_shape,
        cifar=isinstance(depth, int) and depth >= 8 and (depth - 2) % 6 == 0,
        imagenet=depth in IMAGENET_STAGES,
        depth_error=_depth_error(depth),
    )


def _depth_error(depth) -> str:
    return (
        f"depth={depth!r} is not a ResNet depth: use 6n+2 with n >= 1 for the CIFAR form "
        f"(20, 32, 44, 56, 110) or one of {sorted(IMAGENET_STAGES)} for the ImageNet form."
    )


@base.shared_docstring
def AnytimeResNet(
    depth: int = 20,
    width: int | None = None,
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
    include_preprocessing: bool = True,
) -> AnytimeModel:
    """Anytime pre-activation ResNet (ResANN) with an exit every `exit_every` units.

    Forms:
      CIFAR (`depth = 6n + 2`): 3x3 stem of `width` channels, then 3 stages of n basic
        units at widths w, 2w, 4w; stages 2 and 3 start with a stride-2 unit.
        Default input (32, 32, 3); width defaults to 16.
      ImageNet (`depth` 18/34 basic, 50/101/152 bottleneck): 7x7/2 stem and 3x3/2 max
        pool, then 4 stages at widths w, 2w, 4w, 8w. Default input (224, 224, 3); width
        defaults to 64.
    `variant` forces the form ("cifar" or "imagenet"); depths 50 and 152 fit both and
    default to CIFAR for inputs (`input_shape` or `input_tensor`) of at most 64 pixels.

    Exits: unit u has one when (U - u) % exit_every == 0, U the number of units, so the
    last unit always has one. Each head is BN-ReLU, global average pooling,
    Dense(classes); ResNet-20 has 9 units and 9 exits at exit_every=1.

    Args:
        depth: 6n + 2 (CIFAR form) or 18, 34, 50, 101, 152 (ImageNet form). Defaults to 20.
        width: the first stage's channels. Defaults to None: 16 (CIFAR), 64 (ImageNet).
        exit_every: an exit every this many units, counted back from the last. Defaults
            to 1 (an exit after every unit).
        {shared arguments}
        variant: "cifar" or "imagenet" to force the form. Defaults to None (the depth and
            the input size decide, as above).

    Returns:
        An `AnytimeModel`.

    Raises:
        ValueError: a depth of no form, a width, `classes` or `exit_every` below 1, an
            input too small for the depth, or a shared argument keras.applications refuses.

    Example:

    ```python
    model = keras_anytime.applications.AnytimeResNet(depth=20, weights="cifar10")
    probabilities = model.predict(images)  # a list: exit_1 … exit_9, shallow to deep
    ```
    """
    shape = base.checked_input_shape(
        input_tensor,
        input_shape,
        include_top=include_top,
        weights=weights,
        pooling=pooling,
        classifier_activation=classifier_activation,
    )
    variant = resolve_variant(depth, variant, shape)
    imagenet = variant == "imagenet"
    width = width if width is not None else (64 if imagenet else 16)
    base.positive_int(width, "width")
    base.positive_int(classes, "classes")
    if imagenet:
        stage_units, kind = IMAGENET_STAGES[depth]
        widths = [width, 2 * width, 4 * width, 8 * width]
        unit = basic_unit if kind == "basic" else bottleneck_unit
    else:
        n = (depth - 2) // 6
        stage_units, widths, unit = [n, n, n], [width, 2 * width, 4 * width], basic_unit
    exits = set(base.exit_units(sum(stage_units), exit_every))

    inputs, x = base.model_input(
        input_tensor, shape, 224 if imagenet else 32, include_top=include_top
    )
    # Every stride-2 step halves the map; it must stay at least 1x1 at the last stage.
    base.check_min_size(x, 32 if imagenet else 4, f"AnytimeResNet-{depth} ({variant} form)")
    if include_preprocessing:
        x = base.preprocessing(x, imagenet)
    if imagenet:
        x = base.conv(x, width, 7, 2, name="stem_conv")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    else:
        x = base.conv(x, width, 3, name="stem_conv")

    features, u = [], 0
    for stage, (units, filters) in enumerate(zip(stage_units, widths), start=1):
        for i in range(units):
            u += 1
            strides = 2 if stage > 1 and i == 0 else 1
            x = unit(x, filters, strides, name=f"stage{stage}_unit{i + 1}")
            if u in exits:
                features.append(x)

    def head(x, index, n_classes):
        return base.exit_head(x, index, n_classes, classifier_activation)

    config = {
        "depth": depth,
        "width": width,
        "exit_every": exit_every,
        "variant": variant,
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
        builder="AnytimeResNet",
        config=config,
        name=name or f"anytime_resnet{depth}",
    )


def AnytimeResNet20(**kwargs) -> AnytimeModel:
    """`AnytimeResNet(depth=20, **kwargs)`: the CIFAR form, 9 units.

    At exit_every=1 it has 9 exits; `weights="cifar10"` loads the zoo's `resnet20_cifar10`.
    """
    return AnytimeResNet(depth=20, **kwargs)


def AnytimeResNet32(**kwargs) -> AnytimeModel:
    """`AnytimeResNet(depth=32, **kwargs)`: the CIFAR form, 15 units."""
    return AnytimeResNet(depth=32, **kwargs)


def AnytimeResNet56(**kwargs) -> AnytimeModel:
    """`AnytimeResNet(depth=56, **kwargs)`: the CIFAR form, 27 units."""
    return AnytimeResNet(depth=56, **kwargs)


def AnytimeResNet110(**kwargs) -> AnytimeModel:
    """`AnytimeResNet(depth=110, **kwargs)`: the CIFAR form, 54 units."""
    return AnytimeResNet(depth=110, **kwargs)
