"""`keras_anytime.distribution.use_data_parallel`: training on two devices under JAX.

The suite runs on TensorFlow; the JAX runs get their own process, with XLA's CPU split
into two devices. There a tiny anytime model with what the builders' blocks hold
(L2-regularised kernels, BatchNorm) trains three steps with AdaLoss on one device and
again on two: the losses, AdaLoss's state and the updated weights must agree.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import JAX_ENV

from keras_anytime.distribution import use_data_parallel

pytestmark = pytest.mark.slow

TWO_CPU_DEVICES = {
    **JAX_ENV,
    "XLA_FLAGS": JAX_ENV["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2",
}

SCRIPT = r"""
import json

import jax
import keras
import numpy as np
from keras import layers

from keras_anytime.callbacks import AdaLoss
from keras_anytime.distribution import use_data_parallel
from keras_anytime.models import AnytimeModel

rng = np.random.default_rng(0)
x = rng.normal(size=(8, 6)).astype("float32")
y = rng.integers(0, 4, size=8)


def model():
    # L2 as in the builders, large enough that a miscounted regulariser shows in the loss
    l2 = keras.regularizers.L2(1e-2)
    inputs = keras.Input((6,))
    h, exits = inputs, []
    for k in (1, 2, 3):
        h = layers.Dense(8, kernel_regularizer=l2)(h)
        h = layers.Activation("tanh")(layers.BatchNormalization()(h))
        exits.append(
            layers.Dense(4, activation="softmax", kernel_regularizer=l2, name=f"exit_{k}")(h)
        )
    return AnytimeModel(inputs, exits)


def train(net, start):
    net.set_weights(start)
    net.compile(keras.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    history = net.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, verbose=0,
        callbacks=[AdaLoss(update_every=1)],
    ).history
    state = net.exit_weighting
    return {
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "weights": np.asarray(state.weights_var).tolist(),
        "avg_losses": np.asarray(state.avg_losses).tolist(),
        "steps": int(state.steps),
        "variables": [np.asarray(w).ravel().tolist() for w in net.get_weights()],
    }


def error(**kwargs):
    try:
        use_data_parallel(**kwargs)
    except ValueError as err:
        return str(err)
    return None


single = model()
start = single.get_weights()
one = train(single, start)
errors = {
    "batch_size": error(batch_size=7),
    "too_many": error(devices=3),
    "unknown": error(devices=["cpu:0", "cpu:7"]),
}
distribution = use_data_parallel(batch_size=8)
net = model()  # built under the distribution
two = train(net, start)
print(json.dumps({
    "jax_devices": len(jax.devices()),
    "mesh_devices": int(distribution.device_mesh.devices.size),
    "kernel_devices": len(net.trainable_weights[0].value.sharding.device_set),
    "state_devices": len(net.exit_weighting.weights_var.value.sharding.device_set),
    "errors": errors,
    "one": one,
    "two": two,
}))
"""


@pytest.fixture(scope="module")
def runs():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**os.environ, **TWO_CPU_DEVICES},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_run_really_uses_two_devices(runs):
    assert runs["jax_devices"] == 2
    assert runs["mesh_devices"] == 2
    assert runs["kernel_devices"] == 2  # the model's weights live on both devices
    assert runs["state_devices"] == 2  # and so does AdaLoss's state


def test_two_devices_train_as_one(runs):
    one, two = runs["one"], runs["two"]
    assert one["history"].keys() == two["history"].keys()
    assert "exit_3_loss" in one["history"]
    for key in one["history"]:  # loss, exit_i_loss, adaloss_w_i of each of the 3 steps
        np.testing.assert_allclose(two["history"][key], one["history"][key], atol=1e-5)
    np.testing.assert_allclose(two["weights"], one["weights"], atol=1e-5)
    np.testing.assert_allclose(two["avg_losses"], one["avg_losses"], atol=1e-5)
    assert one["steps"] == two["steps"] == 3
    assert not np.allclose(one["weights"], 1.0)  # AdaLoss moved the weights
    assert len(one["variables"]) == len(two["variables"])
    for a, b in zip(one["variables"], two["variables"]):  # kernels, BatchNorm's statistics
        np.testing.assert_allclose(b, a, atol=1e-5)


def test_bad_devices_and_batch_sizes_are_named(runs):
    errors = runs["errors"]
    assert "batch size 7 does not split evenly over 2 devices" in errors["batch_size"]
    assert "devices=3: there are 2 devices" in errors["too_many"]
    assert "Unknown devices ['cpu:7']" in errors["unknown"]


@pytest.mark.skipif(keras.config.backend() == "jax", reason="checks the other backends")
def test_other_backends_are_pointed_to_tf_distribute():
    with pytest.raises(ValueError, match="needs the JAX backend.*--strategy mirrored"):
        use_data_parallel()


def test_train_command_runs_data_parallel_on_two_devices(cifar_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--depth", "8", "--epochs", "1", "--steps-per-epoch", "2",
            "--batch-size", "32", "--update-every", "1", "--distribution", "data-parallel",
            "--data-dir", str(cifar_dir), "--out", str(out), "--verbose", "0"]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "keras_anytime.cli", *argv],
        env={**os.environ, **TWO_CPU_DEVICES},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    assert record["backend"] == "jax" and record["config"]["distribution"] == "data-parallel"
    assert [row["exit"] for row in json.loads((out / "eval.json").read_text())["exits"]] == [
        1,
        2,
        3,
    ]
