"""Small models shared by the tests."""

import keras
import numpy as np
from keras import layers

from keras_anytime.models import AnytimeModel

# For subprocesses on the JAX backend. XLA's CPU compiler at optimisation level 0: these
# tests check results, not speed, and a JAX model build otherwise compiles an initializer
# per weight shape at full optimisation (most of the JAX tests' time).
JAX_ENV = {
    "KERAS_BACKEND": "jax",
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
}


def dense_anytime(
    num_exits: int = 3, classes: int = 4, features: int = 6, seed: int = 0, **dense_kwargs
):
    """A tiny multi-exit MLP (no BatchNorm, no dropout) with deterministic weights;
    `dense_kwargs` go to every Dense layer (a `kernel_regularizer`, say)."""
    inp = keras.Input((features,))
    x, exits = inp, []
    for k in range(1, num_exits + 1):
        x = layers.Dense(8, activation="tanh", name=f"body_{k}", **dense_kwargs)(x)
        exits.append(
            layers.Dense(classes, activation="softmax", name=f"exit_{k}", **dense_kwargs)(x)
        )
    model = AnytimeModel(inp, exits, name="tiny")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def toy_data(n: int = 64, classes: int = 4, features: int = 6, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + 2 * (x[:, 1] > 0).astype("int64")
    return x, y % classes


def assert_round_trip(model, path, x):
    """Save `model` as .keras, load it back in safe mode, and compare predictions."""
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True by default
    assert loaded.output_names == model.output_names
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    return loaded


def adaloss_fit_lowers_loss(model, x, y, steps: int = 6, lr: float = 0.02):
    """Fit `steps` full-batch steps with AdaLoss(update_every=1); return the summed
    unweighted exit losses (training mode) at the first and the last step."""
    from keras_anytime.callbacks import AdaLoss

    model.compile(keras.optimizers.SGD(lr, momentum=0.9), "sparse_categorical_crossentropy")
    history = model.fit(
        x,
        y,
        batch_size=len(x),
        epochs=steps,
        shuffle=False,
        verbose=0,
        callbacks=[AdaLoss(update_every=1)],
    ).history
    names = [f"{name}_loss" for name in model.output_names]
    first = sum(history[n][0] for n in names)
    last = sum(history[n][-1] for n in names)
    assert not np.allclose(np.array(model.exit_weighting.weights_var), 1.0)  # AdaLoss ran
    return first, last


def small_family_models() -> dict:
    """One small model of each new family, by name (fresh on every call)."""
    from keras_anytime.applications import EANN, AnytimeDenseNet, MSDNet

    return {
        "densenet": AnytimeDenseNet(10, growth_rate=4),
        "msdnet": MSDNet(2, 1, 1, n_channels=4, growth_rate=2, gr_factor="1-2", bn_factor="1-2"),
        "eann": EANN(num_members=2, exit_every=3),
    }
