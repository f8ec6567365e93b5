"""keras-anytime: anytime neural networks for Keras 3, with AdaLoss.

`import keras_anytime` registers `AnytimeModel` and the package's layers with Keras, so
`keras.saving.load_model` restores saved anytime models of every family; it builds no
model and loads no data. The other submodules load on first use, for example
`keras_anytime.applications.AnytimeResNet`.
"""

import importlib

from keras_anytime import layers, models  # register AnytimeModel, RunAfter for load_model

__version__ = "0.1.0"

_LAZY = (
    "applications",
    "attach",
    "callbacks",
    "datasets",
    "evaluation",
    "flops",
    "inference",
    "recipes",
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


__all__ = ["__version__", "attach_exits", "layers", "models", *_LAZY]
