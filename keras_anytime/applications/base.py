"""Pieces every anytime family shares: inputs, preprocessing, conv/BN blocks, exit heads
and the assembly of the final model (exits, weights, `include_top=False`)."""

from __future__ import annotations

import keras
from keras import layers

from keras_anytime import presets
from keras_anytime.datasets import CIFAR10_MEAN, CIFAR10_VARIANCE
from keras_anytime.layers import BatchNormalization
from keras_anytime.models import AnytimeModel

__all__ = [
    "BN_EPSILON",
    "IMAGENET_MEAN",
    "IMAGENET_VARIANCE",
    "L2",
    "POOLING",
    "SHARED_ARGS",
    "bn_relu",
    "check_min_size",
    "checked_input_shape",
    "conv",
    "conv_bn_relu",
    "exit_head",
    "exit_units",
    "feature_outputs",
    "finish",
    "model_input",
    "pick_variant",
    "positive_int",
    "preprocessing",
    "shared_docstring",
]

# ImageNet's per-channel RGB statistics (0..255) for the in-model normalisation: the usual
# torchvision ones, (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225). CIFAR-10's: `datasets`.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_VARIANCE = (3409.976, 3262.693, 3291.890)

# The arguments every builder shares, in the keras.applications order; `shared_docstring`
# puts them where a builder's docstring says `{shared arguments}`.
SHARED_ARGS = """include_top: True (default): outputs `exit_1 … exit_K` of shape
            (batch, classes), shallow to deep. False: outputs `features_1 … features_K`,
            the (batch, h, w, c) maps each head would read (see `pooling`).
        weights: None (default, random initialisation); a preset tag such as "cifar10"
            (the zoo preset of exactly this configuration with that tag); a preset name
            such as "resnet20_cifar10" (of this configuration; `zoo.from_preset` builds any
            preset by name); or a `.weights.h5` / `.keras` file saved from this configuration.
        input_tensor: optional Keras tensor (the output of `keras.Input()` or of a layer)
            to use as the image input; default None. Its shape counts as `input_shape`.
        input_shape: optional (height, width, channels) of the raw images, channels last,
            values in 0..255, agreeing with `input_tensor`'s shape when both are given.
            Default: the form's (32, 32, 3) or (224, 224, 3) with include_top=True,
            (None, None, 3) with include_top=False (a feature extractor for any image
            size). Any channel count builds with weights=None or a file; a preset needs 3.
        pooling: with include_top=False, None (default) to keep each `features_k` 4-D,
            "avg" or "max" for global average or max pooling of each to (batch, c).
            Ignored with include_top=True, as in keras.applications.
        classes: number of classes of every exit head; default 10.
        classifier_activation: of every exit head; default "softmax", None for logits.
            With a preset and include_top=True only None or "softmax" (the preset's).
        name: the model's name; default the family's (e.g. "anytime_resnet20").
        include_preprocessing: True (default) to normalise inputs in the model with fixed
            per-channel mean/std (the CIFAR form CIFAR-10's, the ImageNet form ImageNet's;
            other than 3 channels: the RGB average). False: normalise them yourself."""


def shared_docstring(builder):
    """Decorator: put `SHARED_ARGS` where `builder`'s docstring says `{shared arguments}`.

    Args:
        builder: the builder (returned), its `Args:` entries indented by 8 spaces.
    """
    builder.__doc__ = builder.__doc__.replace("{shared arguments}", SHARED_ARGS)
    return builder


BN_EPSILON = 1.001e-5
# Kernel regulariser `keras.regularizers.L2(L2)`: a gradient of 2 * L2 * w, the decay of the
# authors' CIFAR code (2e-4 * tf.nn.l2_loss(w); recipes' `paper`), twice PyTorch's 1e-4.
L2 = 1e-4


# The output layer of each feature map for each `pooling` mode; None keeps it 4-D.
POOLING = {
    None: layers.Identity,
    "avg": layers.GlobalAveragePooling2D,
    "max": layers.GlobalMaxPooling2D,
}


def checked_input_shape(
    input_tensor, input_shape, *, include_top: bool, weights, pooling, classifier_activation
) -> tuple | None:
    """Check the arguments every builder shares, as keras.applications does.

    Returns the input's (height, width, channels) as given: `input_tensor`'s, else
    `input_shape`, else None; the builders pick their form from it, so both ways of giving
    an input build the same network.

    Args:
        input_tensor: the builder's `input_tensor`, a Keras tensor or None.
        input_shape: the builder's `input_shape`, (height, width, channels) or None.
        include_top: the builder's `include_top`.
        weights: the builder's `weights`.
        pooling: the builder's `pooling`.
        classifier_activation: the builder's `classifier_activation`.

    Raises:
        ValueError: an argument keras.applications would refuse, or channels_first images.
    """
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras-anytime builders take channels_last images (batch, height, width, "
            f"channels), but keras.config.image_data_format() is "
            f"{keras.config.image_data_format()!r}: call "
            'keras.config.set_image_data_format("channels_last") before building.'
        )
    if pooling not in POOLING:
        raise ValueError(f'pooling must be None, "avg" or "max", got {pooling!r}.')
    shape = None if input_shape is None else tuple(input_shape)
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "input_tensor must be a Keras tensor (the output of keras.Input() or of a "
                f"layer), got {type(input_tensor).__name__}; for a shape, pass input_shape."
            )
        actual = tuple(input_tensor.shape[1:])
        if shape is not None and (
            len(shape) != len(actual) or any(d not in (None, a) for d, a in zip(shape, actual))
        ):
            raise ValueError(
                f"input_shape={shape} disagrees with input_tensor's shape {actual}: pass "
                "only input_tensor, or an input_shape that matches it."
            )
        shape = actual
    if shape is not None and (len(shape) != 3 or shape[-1] is None):
        raise ValueError(
            f"The input must be (height, width, channels) with a known channel count, got {shape}."
        )
    if presets.names_a_preset(weights):
        # A preset was trained on RGB with softmax heads; a weights file may hold anything.
        if shape is not None and shape[-1] != 3:
            raise ValueError(
                f"The input must have 3 channels with weights={weights!r}, got input shape "
                f"{shape}. Use weights=None, or a weights file saved from a model with "
                "that channel count."
            )
        activation = keras.activations.get(classifier_activation)
        if include_top and activation not in (
            keras.activations.get("softmax"),
            keras.activations.get(None),
        ):
            raise ValueError(
                f"Only None and 'softmax' are allowed for classifier_activation with "
                f"weights={weights!r} and include_top=True, got {classifier_activation!r}. "
                "Use classifier_activation=None and apply the activation to the logits."
            )
    return shape


def model_input(input_tensor, shape: tuple | None, default_size: int, *, include_top: bool):
    """The model's inputs and the tensor to build on, as keras.applications picks them.

    Args:
        input_tensor: a Keras tensor to build on as it is; None: a new `keras.Input`.
        shape: the shape `checked_input_shape` returned; None: (default_size, default_size,
            3) with the top, (None, None, 3) without (a feature extractor for any size).
        default_size: the form's image side, 32 or 224.
        include_top: whether the model gets exit heads.
    """
    if input_tensor is not None:
        return keras.utils.get_source_inputs(input_tensor), input_tensor
    if shape is None:
        shape = (default_size, default_size, 3) if include_top else (None, None, 3)
    inputs = keras.Input(shape=shape, name="image")
    return inputs, inputs


def positive_int(value, what: str) -> int:
    """`value`, or a ValueError naming `what` unless it is an integer >= 1 (not a bool).

    Args:
        value: the value to check.
        what: the argument's name, for the error message.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return value


def pick_variant(
    variant: str | None, input_shape, *, cifar: bool, imagenet: bool, depth_error: str
) -> str:
    """The builder's form, "cifar" or "imagenet", from its `variant` and depth.

    Args:
        variant: "cifar", "imagenet", or None: the form the depth fits (both: "cifar" for
            inputs of at most 64 pixels).
        input_shape: the input's (height, width, channels), or None.
        cifar: whether the depth fits the CIFAR form.
        imagenet: whether the depth fits the ImageNet form.
        depth_error: the ValueError's message when the depth fits no form allowed.
    """
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
    """Raise a ValueError if the static spatial size of `x` is below `min_size` pixels.

    Args:
        x: a (batch, height, width, channels) Keras tensor.
        min_size: the smallest height and width the network takes.
        what: the network's name, for the error message.
    """
    for dim in x.shape[1:3]:
        if dim is not None and dim < min_size:
            raise ValueError(
                f"Input of {tuple(x.shape[1:3])} pixels is too small for {what}: it needs "
                f"at least {min_size}x{min_size}. Use a larger input_shape or a "
                "shallower configuration."
            )


def preprocessing(x, imagenet: bool):
    """Normalise raw 0..255 images with the form's fixed per-channel statistics.

    Args:
        x: the (batch, height, width, channels) images, any channel count.
        imagenet: True: ImageNet's statistics; False: CIFAR-10's.
    """
    mean, variance = (
        (IMAGENET_MEAN, IMAGENET_VARIANCE) if imagenet else (CIFAR10_MEAN, CIFAR10_VARIANCE)
    )
    if x.shape[-1] != 3:
        # Not RGB (e.g. greyscale): no channel matches R, G or B, so every channel gets
        # the average statistics; a scalar mean/variance broadcasts to any channel count.
        mean, variance = sum(mean) / 3, sum(variance) / 3
    return layers.Normalization(mean=mean, variance=variance, name="normalize")(x)


def conv(x, filters: int, kernel: int, strides: int = 1, name: str | None = None):
    """Bias-free 'same' convolution with the paper's L2 weight decay.

    Args:
        x: the input feature map.
        filters: output channels.
        kernel: the kernel's side.
        strides: the stride. Defaults to 1.
        name: the layer's name. Defaults to None (a name Keras picks).
    """
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
    """BatchNormalization then ReLU, layers `{name}_bn` and `{name}_relu`.

    Args:
        x: the input feature map.
        name: the prefix of the two layers' names.
    """
    x = BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_relu(x, filters: int, kernel: int, strides: int = 1, *, name: str):
    """`conv` then `bn_relu`: layers `{name}_conv`, `{name}_bn` and `{name}_relu`.

    Args:
        x: the input feature map.
        filters: output channels.
        kernel: the kernel's side.
        strides: the stride. Defaults to 1.
        name: the prefix of the layers' names.
    """
    return bn_relu(conv(x, filters, kernel, strides, name=f"{name}_conv"), name)


def exit_head(
    x,
    index: int,
    classes: int,
    classifier_activation,
    pre=None,
    dropout: float = 0.0,
):
    """An exit: `pre(x)`, global average pooling, then Dense(classes) `exit_{index}`.

    Args:
        x: the feature map the exit reads.
        index: the exit's number, 1-based.
        classes: the Dense layer's units; it stays float32 under mixed precision.
        classifier_activation: the Dense layer's activation, e.g. "softmax" or None.
        pre: `pre(x, name)` runs before the pooling. Defaults to None (`bn_relu`).
        dropout: rate of a Dropout before the Dense layer. Defaults to 0.0 (none).
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
    """The 1-based numbers of the units that carry an exit.

    Args:
        num_units: the network's number of units.
        exit_every: an exit every this many units, counted back from the last (it has one).
    """
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
    pooling: str | None,
    classes: int,
    builder: str,
    config: dict,
    name: str,
) -> AnytimeModel:
    """Assemble the model from the feature maps at the exit points, shallow to deep.

    Args:
        inputs: the model's inputs (`model_input`).
        features: the K feature maps that the exits read.
        head: `head(x, index, classes)` builds exit `index`.
        include_top: True: outputs `exit_1 … exit_K`; False: the maps, `features_k`.
        weights: None, a preset tag or name, or a weights file with a top (`presets.lookup`).
        pooling: with include_top=False, "avg" or "max" pools each map to (batch, c).
        classes: the heads' number of classes.
        builder: the builder's name, e.g. "AnytimeResNet".
        config: the arguments that shape the network; `builder_config` is (builder, config).
        name: the model's name.
    """
    builder_config = (builder, config)
    if weights is not None:
        preset = presets.lookup(builder, config, weights, classes=classes if include_top else None)
        # The weights hold a top: build one to load them, then drop it without include_top.
        top_classes = classes if preset is None else preset["classes"]
        exits = [head(x, k, top_classes) for k, x in enumerate(features, start=1)]
        model = AnytimeModel(inputs, exits, name=name, builder_config=builder_config)
        presets.load_weights(model, weights if preset is None else preset)
    elif include_top:
        exits = [head(x, k, classes) for k, x in enumerate(features, start=1)]
        model = AnytimeModel(inputs, exits, name=name, builder_config=builder_config)
    if not include_top:
        outputs = feature_outputs(features, pooling)
        model = AnytimeModel(inputs, outputs, name=name, builder_config=builder_config)
    return model


def feature_outputs(features: list, pooling: str | None) -> list:
    """The outputs `features_1 … features_K` of a model without top.

    Args:
        features: the K feature maps.
        pooling: None keeps them 4-D; "avg" or "max" pools each to (batch, channels).
    """
    return [POOLING[pooling](name=f"features_{k}")(x) for k, x in enumerate(features, start=1)]
