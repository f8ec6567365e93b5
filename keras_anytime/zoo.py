"""The model zoo: pretrained anytime networks by name.

    model = keras_anytime.zoo.load("resnet20_cifar10")

`list_models()` names the presets; `get_preset(name)` gives a preset's manifest entry
(builder, config, weight file, sha256, training command, per-exit `val` accuracy).
The files and the manifest are in `keras_anytime.presets`; the builders in
`keras_anytime.registry`.
"""

from __future__ import annotations

from pathlib import Path

from keras_anytime import registry
from keras_anytime.presets import get_preset, list_models, manifest

__all__ = ["get_preset", "list_models", "load", "load_model_or_preset"]


def load(name: str):
    """Build preset `name` with its pretrained weights (hash-checked)."""
    preset = get_preset(name)
    return registry.builder(preset["builder"])(**preset["config"], weights=preset["weights"])


def load_model_or_preset(name: str):
    """A saved `.keras` model (a path) or a zoo preset (a name), ready to predict."""
    if Path(name).exists():
        import keras

        return keras.saving.load_model(name, compile=False)
    if name in manifest():
        return load(name)
    raise ValueError(
        f"{name!r} is neither a saved model file nor a zoo preset. Presets: "
        f"{list_models() or 'none yet'}."
    )
