"""Run by tests/test_distribute.py in subprocesses: AdaLoss under tf.distribute.

    python3 distributed_run.py single|mirrored|multiworker  (multiworker reads TF_CONFIG)
    python3 distributed_run.py single|mirrored l2

Prints one JSON line with the AdaLoss state after training; with `l2`, the loss and the
weights after one step of a model with L2-regularised kernels.
"""

import json
import sys

import tensorflow as tf

mode = sys.argv[1]
if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from helpers import dense_anytime, toy_data  # noqa: E402

from keras_anytime.callbacks import AdaLoss  # noqa: E402

if mode == "single":
    strategy = tf.distribute.get_strategy()
elif mode == "mirrored":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
else:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()

x, y = toy_data(256)
if sys.argv[2:] == ["l2"]:
    with strategy.scope():
        model = dense_anytime(kernel_regularizer=keras.regularizers.L2(0.05))
        assert len(model.losses) == 6  # one L2 term per kernel
        model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    dataset = tf.data.Dataset.from_tensor_slices((x[:64], y[:64])).batch(64)
    history = model.fit(dataset, epochs=1, verbose=0)
    print(
        json.dumps(
            {
                "replicas": strategy.num_replicas_in_sync,
                "loss": history.history["loss"][0],
                "weights": [w.tolist() for w in model.get_weights()],
            }
        )
    )
    sys.exit(0)
with strategy.scope():
    model = dense_anytime()
    model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
if mode == "multiworker":
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    dataset = dataset.with_options(options)
history = model.fit(dataset, epochs=2, verbose=0, callbacks=[AdaLoss(momentum=0.5, update_every=2)])
state = model.exit_weighting
print(
    json.dumps(
        {
            "replicas": strategy.num_replicas_in_sync,
            "w": np.array(state.weights_var).tolist(),
            "avg": np.array(state.avg_losses).tolist(),
            "steps": float(np.array(state.steps)),
            "logged_w1": history.history["adaloss_w_1"],
        }
    )
)
