"""Training from Python: `TrainConfig` says what to train, `train(config)` trains it.

`keras-anytime train` maps its command line to a `TrainConfig` and calls `train`; run.json
in the run's folder keeps the configuration (`TrainConfig.from_run_json` reads it back),
with the versions, the data folder, the hardware and every start of a resumed run.
"""

from keras_anytime.training.callbacks import TrainingDiverged
from keras_anytime.training.config import DISTRIBUTIONS, STRATEGIES, WEIGHTINGS, TrainConfig
from keras_anytime.training.run import TrainResult, build_model, eval_batches, loss_weights, train

__all__ = [
    "DISTRIBUTIONS",
    "STRATEGIES",
    "WEIGHTINGS",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "build_model",
    "eval_batches",
    "loss_weights",
    "train",
]
