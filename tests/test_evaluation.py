import keras
import numpy as np
import pytest
from helpers import toy_data

from keras_anytime.evaluation import evaluate_exits, relative_error_increase
from keras_anytime.models import AnytimeModel


def _two_exit(activation):
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    first = keras.layers.Dense(4, activation=activation, name="exit_1")(h)
    second = keras.layers.Dense(4, activation=activation, name="exit_2")(
        keras.layers.Dense(8, activation="tanh")(h)
    )
    return AnytimeModel(inp, [first, second])


def test_loss_and_accuracy_of_exits_that_output_logits():
    keras.utils.set_random_seed(0)
    model = _two_exit(None)
    x, y = toy_data(40)
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]
    rows = evaluate_exits(model, batches, from_logits=True)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for row, logits in zip(rows, model.predict(x, verbose=0)):
        assert row["loss"] == pytest.approx(float(cross_entropy(y, logits)), rel=1e-5)
        assert row["accuracy"] == np.mean(logits.argmax(axis=1) == y)
    with pytest.raises(ValueError, match="not class probabilities.*from_logits=True"):
        evaluate_exits(model, batches)


def test_loss_of_exits_that_output_probabilities():
    keras.utils.set_random_seed(0)
    model = _two_exit("softmax")
    x, y = toy_data(40)
    rows = evaluate_exits(model, [(x, y)])
    cross_entropy = keras.losses.SparseCategoricalCrossentropy()
    for row, probs in zip(rows, model.predict(x, verbose=0)):
        assert row["loss"] == pytest.approx(float(cross_entropy(y, probs)), rel=1e-5)


def test_relative_error_increase():
    assert relative_error_increase([0.2, 0.1], [0.1, 0.1]) == [100.0, 0.0]
    with pytest.raises(ValueError, match="2 errors and 1 OPT"):
        relative_error_increase([0.2, 0.1], [0.1])


def test_flip_averages_each_exit_over_the_mirror_image_and_doubles_the_macs():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    first = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(h)
    second = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(h))
    model = AnytimeModel(inp, [first, second])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=30)
    plain = evaluate_exits(model, [(x, y)])
    flipped = evaluate_exits(model, [(x[:20], y[:20]), (x[20:], y[20:])], flip=True)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy()
    for row, base, a, b in zip(
        flipped, plain, model.predict(x, verbose=0), model.predict(x[:, :, ::-1], verbose=0)
    ):
        mean = (a + b) / 2
        assert row["macs"] == 2 * base["macs"]
        assert row["accuracy"] == np.mean(mean.argmax(axis=1) == y)
        assert row["loss"] == pytest.approx(float(cross_entropy(y, mean)), rel=1e-5)
    # the mirror image changes the outputs: the test would notice a flip that did nothing
    assert not np.allclose(
        model.predict(x, verbose=0)[1], model.predict(x[:, :, ::-1], verbose=0)[1]
    )
