"""The callbacks a training run adds to AdaLoss and Keras's own: epoch timing, a stop with
a clear error when the loss diverges, and a progress bar of four figures."""

from __future__ import annotations

import math
import time

import keras
import numpy as np

__all__ = ["EpochTimer", "ExitProgressBar", "StopOnNaN", "TrainingDiverged", "learning_rate"]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def learning_rate(optimizer) -> float:
    """The optimiser's learning rate at its current step.

    Args:
        optimizer: a Keras optimiser, its learning rate a float or a schedule.
    """
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpochTimer(keras.callbacks.Callback):
    """Logs each epoch's wall time, `epoch_seconds`, and final `learning_rate`.

    Both go into the epoch's logs, so history.csv keeps them.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = time.time() - self.start
        logs["learning_rate"] = learning_rate(self.model.optimizer)


class StopOnNaN(keras.callbacks.Callback):
    """Raises `TrainingDiverged` at the first batch whose training loss is NaN or infinite.

    It checks as `keras.callbacks.TerminateOnNaN` does, but stops with an error that says
    how to resume.

    Args:
        backup: the run's backup folder, which keeps the last finished epoch (named in the
            error, with how to resume from it).
    """

    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"The training loss became {float(loss)} at batch {batch + 1} of epoch "
                f"{self.epoch + 1}: training diverged. {self.backup} still holds the last "
                "finished epoch. Rerun the same run with a lower learning rate (--lr) to "
                "resume from it, or delete that folder to start again."
            )


class ExitProgressBar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, showing four figures rather than every exit's.

    The total loss, the last exit's accuracy, the mean accuracy over the exits and the
    learning rate (val figures at epoch end); history.csv still gets every exit's figures.

    Args:
        num_exits: the model's number of exits.
    """

    def __init__(self, num_exits: int):
        super().__init__()
        self.accuracies = [f"exit_{k}_accuracy" for k in range(1, num_exits + 1)]

    def _shown(self, logs, prefix=""):
        logs = logs or {}
        shown = {}
        if f"{prefix}loss" in logs:
            shown[f"{prefix}loss"] = logs[f"{prefix}loss"]
        found = [logs[prefix + a] for a in self.accuracies if prefix + a in logs]
        if found:
            shown[f"{prefix}last_exit_acc"] = found[-1]
            shown[f"{prefix}mean_exit_acc"] = float(np.mean(found))
        return shown

    def on_train_batch_end(self, batch, logs=None):
        shown = self._shown(logs)
        shown["lr"] = learning_rate(self.model.optimizer)
        super().on_train_batch_end(batch, shown)

    def on_test_batch_end(self, batch, logs=None):
        super().on_test_batch_end(batch, self._shown(logs))

    def on_epoch_end(self, epoch, logs=None):
        shown = {**self._shown(logs), **self._shown(logs, "val_")}
        super().on_epoch_end(epoch, shown)

    def on_test_end(self, logs=None):
        super().on_test_end(self._shown(logs))
