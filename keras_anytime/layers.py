"""The package's own Keras layers. `import keras_anytime` imports this module, which
registers them, so `keras.saving.load_model` restores every family's saved models."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_anytime")
class RunAfter(keras.layers.Layer):
    """`RunAfter()([x, *earlier])` returns `x` unchanged, at no cost.

    `earlier` are tensors the anytime order computes before `x` is used (the other
    scales of an MSDNet block, the previous member of an EANN). They only order the
    graph: no gradient flows to them, and `flops.exit_flops` follows them, so an exit's
    cost includes the work run before it.
    """

    def call(self, inputs):
        return inputs[0]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)
