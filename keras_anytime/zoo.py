"""The model zoo: pretrained anytime networks by name.

    model = keras_anytime.zoo.from_preset("resnet20_cifar10")  # or zoo.load(...)
    backbone = keras_anytime.zoo.from_preset("resnet20_cifar10", include_top=False)

`list_models()` names the presets; `get_preset(name)` gives a preset's manifest entry
(builder, config, tag, weight file, sha256, training command, per-exit `val` accuracy).
A preset's name is its key; its tag ("cifar10") is what a builder's `weights` takes to
load it from the builder's configuration (`AnytimeResNet(depth=20, weights="cifar10")`).
The files, the manifest and the loader are in `keras_anytime.presets`; the builders in
`keras_anytime.registry`.
"""

from __future__ import annotations

from pathlib import Path

from keras_anytime import registry
from keras_anytime.presets import get_preset, list_models, manifest

__all__ = ["from_preset", "get_preset", "list_models", "load", "load_model_or_preset"]


def from_preset(preset: str, *, load_weights: bool = True, **kwargs):
    """Build a zoo preset by name: its builder with its configuration and its weights.

    The model is the builder's, called with the preset's configuration and
    `weights=preset`, so its weight file goes through the loader every builder uses
    (`presets.load_weights`, which checks the file's sha256 first).

    Args:
        preset: a preset's name, e.g. "resnet20_cifar10" (see `list_models()`).
        load_weights: True (default) to load the pretrained weights; False for the
            preset's network with random weights, e.g. to train it from scratch.
        **kwargs: the builder's other arguments: include_top, input_tensor,
            input_shape, pooling, classes, classifier_activation, name. The
            configuration and `weights` come from the preset.

    Returns:
        An `AnytimeModel` whose `builder_config` is the preset's builder and config.

    Example:

    ```python
    model = zoo.from_preset("resnet20_cifar10")
    features = zoo.from_preset("msdnet_cifar10", include_top=False, pooling="avg")
    ```
    """
    entry = get_preset(preset)
    fixed = sorted(kwargs.keys() & {*entry["config"], "weights"})
    if fixed:
        raise ValueError(
            f"Preset {preset!r} sets {fixed} itself ({entry['builder']} {entry['config']}). "
            f"Leave them out, or call keras_anytime.applications.{entry['builder']} with "
            "your configuration and weights=None."
        )
    build = registry.builder(entry["builder"])
    return build(**entry["config"], weights=preset if load_weights else None, **kwargs)


# Another name for `from_preset`, as in `zoo.load("resnet20_cifar10")`.
load = from_preset


def load_model_or_preset(name: str):
    """A saved `.keras` model (a path) or a zoo preset (a name), ready to predict.

    Args:
        name: the path of a `.keras` file, or a preset's name (see `list_models()`).

    Raises:
        ValueError: `name` is neither an existing file nor a preset.
    """
    if Path(name).exists():
        import keras

        return keras.saving.load_model(name, compile=False)
    if name in manifest():
        return load(name)
    raise ValueError(
        f"{name!r} is neither a saved model file nor a zoo preset. Presets: "
        f"{list_models() or 'none yet'}."
    )
