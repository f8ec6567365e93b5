"""keras-anytime: anytime neural networks for Keras 3, with AdaLoss.

Importing the package is cheap: submodules (and Keras) load on first use,
for example `keras_anytime.applications.AnytimeResNet`.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "applications",
    "callbacks",
    "datasets",
    "evaluation",
    "flops",
    "models",
    "recipes",
    "weighting",
    "zoo",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_anytime.{name}")
    raise AttributeError(f"module 'keras_anytime' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
