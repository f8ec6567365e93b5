"""keras-anytime: anytime neural networks for Keras 3, with AdaLoss.

`import keras_anytime` registers `AnytimeModel`, the package's layers and its loss with
Keras, so `keras.saving.load_model` restores saved anytime models of every family, compiled
ones (`keras-anytime train`'s model.keras) included; it builds no
model and loads no data. The other submodules load on first use, for example
`keras_anytime.applications.AnytimeResNet`.
"""

import importlib

# registered with Keras for load_model: AnytimeModel, the layers, the compiled loss
from keras_anytime import layers, losses, models

__version__ = "0.1.0"

_LAZY = (
    "applications",
    "attach",
    "callbacks",
    "datasets",
    "distribution",
    "evaluation",
    "flops",
    "inference",
    "recipes",
    "registry",
    "training",
    "tuner",
    "weighting",
    "zoo",
)


def __getattr__(name: str):
    if name == "attach_exits":
        return importlib.import_module("keras_anytime.attach").attach_exits
    if name in _LAZY:
        return importlib.import_module(f"keras_anytime.{name}")
    raise AttributeError(f"module 'keras_anytime' has no attribute {name!r}")


__all__ = ["__version__", "attach_exits", "layers", "losses", "models", *_LAZY]
