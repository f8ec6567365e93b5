"""keras-anytime: anytime neural networks for Keras 3, with AdaLoss.

`import keras_anytime` registers `AnytimeModel`, the package's layers and its loss with
Keras, so `keras.saving.load_model` restores saved anytime models of every family, compiled
ones (`keras-anytime train`'s model.keras) included; it builds no model and loads no data.

The names a user needs are attributes of the package, each loaded from its module on first
use: the builders (`keras_anytime.AnytimeResNet`, `AnytimeDenseNet`, `MSDNet`, `EANN` and
their named variants), `AnytimeModel` and `truncate`, `attach_exits`, the callbacks
`AdaLoss` and `WeightEMA`, `exit_flops`, `evaluate_exits`, `EarlyExitPredictor`,
`use_data_parallel`, and `TrainConfig`, `train` and `TrainResult`. So are the submodules,
for example `keras_anytime.zoo` or `keras_anytime.datasets`.
"""

import importlib

# registered with Keras for load_model: AnytimeModel, the layers, the compiled loss
from keras_anytime import layers, losses, models
from keras_anytime.models import AnytimeModel, truncate

__version__ = "0.1.0"

_SUBMODULES = (
    "applications",
    "attach",
    "callbacks",
    "datasets",
    "distribution",
    "evaluation",
    "flops",
    "graph",
    "hardware",
    "inference",
    "presets",
    "recipes",
    "registry",
    "training",
    "tuner",
    "weighting",
    "zoo",
)
# each top-level name, by the submodule that holds it
_NAMES = {
    **dict.fromkeys(
        (
            "AnytimeResNet",
            "AnytimeResNet20",
            "AnytimeResNet32",
            "AnytimeResNet56",
            "AnytimeResNet110",
            "AnytimeDenseNet",
            "AnytimeDenseNetBC100",
            "MSDNet",
            "MSDNetCIFAR",
            "MSDNetImageNet",
            "EANN",
        ),
        "applications",
    ),
    "attach_exits": "attach",
    "AdaLoss": "callbacks",
    "WeightEMA": "callbacks",
    "exit_flops": "flops",
    "evaluate_exits": "evaluation",
    "EarlyExitPredictor": "inference",
    "use_data_parallel": "distribution",
    "TrainConfig": "training",
    "TrainResult": "training",
    "train": "training",
}


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"keras_anytime.{_NAMES[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_anytime.{name}")
    else:
        raise AttributeError(f"module 'keras_anytime' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AnytimeModel",
    "__version__",
    "layers",
    "losses",
    "models",
    "truncate",
    *_SUBMODULES,
    *_NAMES,
]
