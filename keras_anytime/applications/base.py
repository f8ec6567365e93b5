"""Pieces every anytime family shares: inputs, preprocessing, conv/BN blocks, exit heads
and the assembly of the final model (exits, weights, `include_top=False`)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from keras_anytime import presets
from keras_anytime.datasets import CIFAR10_MEAN, CIFAR10_VARIANCE
from keras_anytime.layers import BatchNormalization
from keras_anytime.models import AnytimeModel

# Per-channel RGB statistics (0..255) used by the in-model normalisation; CIFAR-10's are
# in `datasets`. ImageNet: the usual torchvision statistics, (0.485, 0.456, 0.406) /
# (0.229, 0.224, 0.225).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_VARIANCE = (3409.976, 3262.693, 3291.890)

# The arguments every builder shares, in the keras.applications order; `shared_docstring`
# puts them where a builder's docstring says `{shared arguments}`.
SHARED_ARGS = """include_top: True: outputs `exit_1 … exit_K` of shape (batch, classes),
            shallow to deep. False: outputs `features_1 … features_K`, the
            (batch, h, w, c) maps each head would read.
        weights: None (random initialisation), "cifar10" (the zoo preset of exactly this
            configuration) or the path of a `.weights.h5` / `.keras` file saved from it.
        input_tensor, input_shape: as in keras.applications; input is raw RGB 0..255,
            channels last.
        classes, classifier_activation: of every exit head (None: logits).
        name: the model's name.
        include_preprocessing: normalise inputs in the model (per-channel mean/std)."""


def shared_docstring(builder):
    """Decorator: fill `{shared arguments}` in `builder`'s docstring with SHARED_ARGS."""
    builder.__doc__ = builder.__doc__.replace("{shared arguments}", SHARED_ARGS)
    return builder


BN_EPSILON = 1.001e-5
# Kernel regulariser `keras.regularizers.L2(L2)`: L2 * sum(w**2) in the loss, a gradient of
# 2 * L2 * w: the decay the authors' code applies on CIFAR (2e-4 * tf.nn.l2_loss(w), the
# `paper` recipe in keras_anytime.recipes), twice PyTorch's weight_decay=1e-4.
L2 = 1e-4


def model_input(input_tensor, input_shape: Sequence[int | None] | None, default_shape):
    """The model's `keras.Input` and the tensor to build on, as in keras.applications.

    The builders lay images out channels_last (batch, height, width, channels); under
    `keras.config.image_data_format() == "channels_first"` they refuse to build rather
    than build a network that reads the axes wrongly.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras-anytime builders take channels_last images (batch, height, width, "
            f"channels), but keras.config.image_data_format() is "
            f"{keras.config.image_data_format()!r}: call "
            'keras.config.set_image_data_format("channels_last") before building.'
        )
    shape = tuple(input_shape) if input_shape is not None else tuple(default_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    if input_tensor is None:
        inputs = keras.Input(shape=shape, name="image")
        return inputs, inputs
    if not keras.backend.is_keras_tensor(input_tensor):
        inputs = keras.Input(tensor=input_tensor, shape=shape, name="image")
        return inputs, inputs
    return keras.utils.get_source_inputs(input_tensor), input_tensor


def positive_int(value, what: str) -> int:
    """`value` if it is an integer >= 1, else a ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return value


def pick_variant(
    variant: str | None, input_shape, *, cifar: bool, imagenet: bool, depth_error: str
) -> str:
    """Resolve a builder's `variant` ("cifar" | "imagenet" | None) from whether its
    depth fits each form; when both fit, inputs of at most 64 pixels mean "cifar"."""
    if variant is not None:
        if variant not in ("cifar", "imagenet"):
            raise ValueError(f"variant must be 'cifar' or 'imagenet', got {variant!r}.")
        if (variant == "cifar" and not cifar) or (variant == "imagenet" and not imagenet):
            raise ValueError(depth_error)
        return variant
    if cifar and imagenet:
        small = input_shape is not None and all(d is not None and d <= 64 for d in input_shape[:2])
        return "cifar" if small else "imagenet"
    if cifar:
        return "cifar"
    if imagenet:
        return "imagenet"
    raise ValueError(depth_error)


def check_min_size(x, min_size: int, what: str) -> None:
    """Raise if the static spatial size of `x` is below `min_size` pixels."""
    for dim in x.shape[1:3]:
        if dim is not None and dim < min_size:
            raise ValueError(
                f"Input of {tuple(x.shape[1:3])} pixels is too small for {what}: it needs "
                f"at least {min_size}x{min_size}. Use a larger input_shape or a "
                "shallower configuration."
            )


def preprocessing(x, imagenet: bool):
    """Normalise raw RGB in 0..255 with fixed per-channel statistics."""
    mean, variance = (
        (IMAGENET_MEAN, IMAGENET_VARIANCE)
        if imagenet
        else (
            CIFAR10_MEAN,
            CIFAR10_VARIANCE,
        )
    )
    return layers.Normalization(mean=mean, variance=variance, name="normalize")(x)


def conv(x, filters: int, kernel: int, strides: int = 1, name: str | None = None):
    """Bias-free 'same' convolution with the paper's L2 weight decay."""
    return layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=keras.regularizers.L2(L2),
        name=name,
    )(x)


def bn_relu(x, name: str):
    x = BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_relu(x, filters: int, kernel: int, strides: int = 1, *, name: str):
    return bn_relu(conv(x, filters, kernel, strides, name=f"{name}_conv"), name)


def exit_head(
    x,
    index: int,
    classes: int,
    classifier_activation,
    pre=None,
    dropout: float = 0.0,
):
    """An exit: `pre(x)` (BN-ReLU by default), global average pooling, Dense(classes).

    The Dense layer is kept in float32 under a mixed-precision policy. The output layer is
    named `exit_{index}`.
    """
    name = f"exit_{index}"
    x = bn_relu(x, f"{name}_head") if pre is None else pre(x, f"{name}_head")
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return layers.Dense(
        classes,
        activation=classifier_activation,
        kernel_regularizer=keras.regularizers.L2(L2),
        dtype="float32",
        name=name,
    )(x)


def exit_units(num_units: int, exit_every: int) -> list[int]:
    """1-based unit numbers that carry an exit: every `exit_every` units, counted back
    from the last unit, which always has one."""
    if not isinstance(exit_every, int) or exit_every < 1:
        raise ValueError(f"exit_every must be an integer >= 1, got {exit_every!r}.")
    return [u for u in range(1, num_units + 1) if (num_units - u) % exit_every == 0]


def finish(
    inputs,
    features: list,
    head,
    *,
    include_top: bool,
    weights: str | None,
    classes: int,
    builder: str,
    config: dict,
    name: str,
) -> AnytimeModel:
    """Assemble the model from the feature maps at the exit points.

    `head(x, index, classes)` builds exit `index`.
    `include_top=True`: outputs are the exits `exit_1 … exit_K`, shallow to deep.
    `include_top=False`: outputs are the K feature maps the heads would read, named
    `features_1 … features_K`, shallow to deep; no head layers are kept.
    `weights`: None, "cifar10" (the zoo preset of this exact configuration) or the path
    of a `.weights.h5` / `.keras` file saved from the same configuration with a top.
    The model's `builder_config` is `(builder, config)`, the key of its zoo preset.
    """
    if weights is not None:
        path, top_classes = presets.weights_path(
            builder, config, weights, classes=classes, include_top=include_top
        )
        exits = [head(x, k, top_classes) for k, x in enumerate(features, start=1)]
        model = AnytimeModel(inputs, exits, name=name)
        presets.load_weights_into(model, path)
    elif include_top:
        exits = [head(x, k, classes) for k, x in enumerate(features, start=1)]
        model = AnytimeModel(inputs, exits, name=name)
    if not include_top:
        outputs = [
            layers.Identity(name=f"features_{k}")(x) for k, x in enumerate(features, start=1)
        ]
        model = AnytimeModel(inputs, outputs, name=name)
    model.builder_config = (builder, config)
    return model
