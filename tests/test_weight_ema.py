"""WeightEMA: the average of the weights, BatchNorm statistics included, against numpy."""

import keras
import numpy as np
import pytest
from helpers import toy_data

from keras_anytime.callbacks import WeightEMA
from keras_anytime.models import AnytimeModel


def bn_anytime():
    """A two-exit MLP with BatchNorm, so that the average covers moving statistics."""
    inp = keras.Input((6,))
    x = keras.layers.Dense(8, use_bias=False, name="body")(inp)
    x = keras.layers.BatchNormalization(momentum=0.5, name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    exits = [keras.layers.Dense(4, activation="softmax", name=f"exit_{k}")(x) for k in (1, 2)]
    model = AnytimeModel(inp, exits, name="bn_tiny")
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    return model


class Recorder(keras.callbacks.Callback):
    """The weights after every training step, before WeightEMA sees them."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(w) for w in self.model.get_weights()])


def numpy_average(steps, initial, momentum):
    average = [np.array(w, dtype=np.float64) for w in initial]
    for t, weights in enumerate(steps, start=1):
        m = min(momentum, (1 + t) / (10 + t))
        average = [m * a + (1 - m) * w for a, w in zip(average, weights)]
    return average


def test_average_covers_batchnorm_statistics_and_ends_in_the_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = bn_anytime()
    x, y = toy_data(64)
    initial = [np.array(w) for w in model.get_weights()]
    recorder = Recorder()
    path = tmp_path / "ema.npz"
    model.fit(
        x, [y, y], batch_size=16, epochs=3, shuffle=False, verbose=0,
        callbacks=[recorder, WeightEMA(0.9, path=path)],
    )  # fmt: skip
    expected = numpy_average(recorder.steps, initial, 0.9)
    names = [w.path for w in model.weights]
    assert "bn/moving_mean" in names and "bn/moving_variance" in names
    for name, got, want, last in zip(names, model.get_weights(), expected, recorder.steps[-1]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        assert not np.allclose(got, last), f"{name} is the last step's, not the average"
    with np.load(path) as saved:
        assert int(saved["steps"]) == 12


def test_validation_runs_with_the_average_and_training_with_the_weights():
    keras.utils.set_random_seed(0)
    model = bn_anytime()
    x, y = toy_data(64)

    class Check(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            self.val_weights = [np.array(w) for w in self.model.get_weights()]

    recorder, check = Recorder(), Check()
    history = model.fit(
        x, [y, y], batch_size=16, epochs=2, shuffle=False, verbose=0,
        validation_data=(x, [y, y]), callbacks=[recorder, WeightEMA(0.9), check],
    )  # fmt: skip
    # the model ends on the average, which the last validation saw
    final = model.evaluate(x, [y, y], verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    np.testing.assert_array_equal(check.val_weights[0], model.get_weights()[0])
    assert not np.allclose(check.val_weights[0], recorder.steps[-1][0])
    # the second epoch trained on from the first's weights, not from its average
    first_epoch_end = recorder.steps[3]
    model.set_weights(first_epoch_end)
    model.fit(x, [y, y], batch_size=16, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], recorder.steps[-1][0], rtol=1e-5)


def test_a_resumed_run_goes_on_with_the_saved_average(tmp_path):
    x, y = toy_data(64)
    path = tmp_path / "ema.npz"
    keras.utils.set_random_seed(0)
    model = bn_anytime()
    initial = [np.array(w) for w in model.get_weights()]
    recorder = Recorder()
    model.fit(x, [y, y], batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[recorder, WeightEMA(0.9, path=path)])  # fmt: skip
    trained = recorder.steps[-1]
    model.set_weights(trained)  # as BackupAndRestore restores the trained weights
    model.fit(x, [y, y], batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[recorder, WeightEMA(0.9, path=path)])  # fmt: skip
    expected = numpy_average(recorder.steps, initial, 0.9)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bad_arguments_and_mismatched_or_corrupt_averages(tmp_path):
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match=r"momentum must be in \(0, 1\)"):
            WeightEMA(bad)
    x, y = toy_data(32)
    other = tmp_path / "other.npz"
    np.savez(other, steps=3, w0=np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="does not match this model's 9 float weights"):
        bn_anytime().fit(x, [y, y], verbose=0, callbacks=[WeightEMA(0.9, path=other)])
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a readable weight average"):
        bn_anytime().fit(x, [y, y], verbose=0, callbacks=[WeightEMA(0.9, path=corrupt)])
