"""Small models shared by the tests."""

import keras
import numpy as np
from keras import layers

from keras_anytime.models import AnytimeModel


def dense_anytime(num_exits: int = 3, classes: int = 4, features: int = 6, seed: int = 0):
    """A tiny multi-exit MLP (no BatchNorm, no dropout) with deterministic weights."""
    inp = keras.Input((features,))
    x, exits = inp, []
    for k in range(1, num_exits + 1):
        x = layers.Dense(8, activation="tanh", name=f"body_{k}")(x)
        exits.append(layers.Dense(classes, activation="softmax", name=f"exit_{k}")(x))
    model = AnytimeModel(inp, exits, name="tiny")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def toy_data(n: int = 64, classes: int = 4, features: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")
    return x, y % classes
