"""Shared by the benchmarks: per-step wall time of `fit`."""

import time

import keras


class StepTimer(keras.callbacks.Callback):
    """Records the wall time of every training step in `times` (seconds)."""

    def on_train_begin(self, logs=None):
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)
