"""The package's own Keras layers. `import keras_anytime` imports this module, which
registers them, so `keras.saving.load_model` restores every family's saved models."""

from __future__ import annotations

import keras

__all__ = ["BatchNormalization", "RunAfter"]


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


@keras.saving.register_keras_serializable(package="keras_anytime")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs TensorFlow's fused kernel on TensorFlow.

    The fused kernel (`FusedBatchNormV3`) makes one pass over the activations forward and
    one backward. Keras's own layer computes the moments and the normalisation as separate
    element-wise operations in float32, each a pass over the activations with its own
    gradient; on CPUs those passes, not the convolutions, take most of a training step
    (benchmarks/README.md, "Training throughput against plain PyTorch").

    Same variables, arguments and results as the Keras layer (the moving variance is the
    population variance, as there). 4-D inputs normalised over the channel axis (last, or
    1 for channels_first), with no mask and no renorm, in float32 or with a multiple of 16
    channels, take the fused kernel; anything else, and the other backends, run the Keras
    layer.
    """

    def _fused_format(self, inputs, mask) -> str | None:
        if keras.config.backend() != "tensorflow" or mask is not None or self.renorm:
            return None
        if len(inputs.shape) != 4 or not (self.scale and self.center):
            return None
        axis = self.axis % 4
        if inputs.dtype != "float32" and (inputs.shape[axis] or 1) % 16:
            # in bfloat16 the fused kernel is slower than Keras's float32 ops unless the
            # channels come in multiples of 16, which most of an MSDNet's do not
            # (benchmarks/README.md, "Training throughput against plain PyTorch")
            return None
        return {3: "NHWC", 1: "NCHW"}.get(axis)

    def call(self, inputs, training=None, mask=None):
        data_format = self._fused_format(inputs, mask)
        if data_format is None:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        if inputs.dtype not in (tf.float32, tf.bfloat16, tf.float16):
            inputs = tf.cast(inputs, "float32")
        if not (training and self.trainable):
            return tf.compat.v1.nn.fused_batch_norm(
                inputs,
                self.gamma,
                self.beta,
                mean=self.moving_mean,
                variance=self.moving_variance,
                epsilon=self.epsilon,
                data_format=data_format,
                is_training=False,
            )[0]
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format=data_format
        )[:3]
        # the kernel returns the unbiased variance; Keras averages the population one
        shape = tf.shape(inputs)
        count = tf.cast(
            tf.reduce_prod(shape) // shape[1 if data_format == "NCHW" else 3], "float32"
        )
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs
