import keras
import numpy as np
import pytest

from keras_anytime.layers import BatchNormalization


def _pair(axis, channels=4, **kwargs):
    ours = BatchNormalization(axis=axis, momentum=0.9, **kwargs)
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.9, **kwargs)
    rng = np.random.default_rng(0)
    shape = (6, 5, 7, channels) if axis == -1 else (6, channels, 5, 7)
    x = rng.normal(2.0, 3.0, shape).astype("float32")
    for layer in (ours, theirs):
        layer.build(shape)
    gamma, beta = rng.uniform(0.5, 2, channels), rng.normal(size=channels)
    for layer in (ours, theirs):
        layer.set_weights([gamma, beta, np.full(channels, 0.5), np.full(channels, 2.0)])
    return ours, theirs, x


@pytest.mark.parametrize("axis", [-1, 1])
def test_fused_batch_norm_matches_the_keras_layer(axis):
    """Outputs, input and parameter gradients and moving statistics equal Keras's own
    BatchNormalization, in training and in inference."""
    ours, theirs, x = _pair(axis)
    w = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    results = []
    for layer in (ours, theirs):
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = layer(xt, training=True)
                loss = tf.reduce_sum(y * w)
            grads = tape.gradient(loss, [xt, layer.gamma.value, layer.beta.value])
            grads = [g.numpy() for g in grads]
        else:
            y, grads = layer(x, training=True), []
        moving = [keras.ops.convert_to_numpy(v) for v in (layer.moving_mean, layer.moving_variance)]
        inference = keras.ops.convert_to_numpy(layer(x, training=False))
        results.append((keras.ops.convert_to_numpy(y), grads, moving, inference))
    (y1, g1, m1, i1), (y2, g2, m2, i2) = results
    np.testing.assert_allclose(y1, y2, atol=2e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-4)
    for a, b in zip(m1, m2, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(i1, i2, atol=2e-5)


def test_fused_batch_norm_under_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        ours, theirs, x = _pair(-1, channels=16)
        if keras.config.backend() == "tensorflow":  # 16 channels: the fused kernel runs
            assert ours._fused_format(keras.ops.cast(x, "bfloat16"), None) == "NHWC"
            assert ours._fused_format(keras.ops.cast(x[..., :6], "bfloat16"), None) is None
        a = keras.ops.convert_to_numpy(keras.ops.cast(ours(x, training=True), "float32"))
        b = keras.ops.convert_to_numpy(keras.ops.cast(theirs(x, training=True), "float32"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    np.testing.assert_allclose(a, b, atol=0.05)  # bfloat16 inputs and outputs
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours.moving_mean),
        keras.ops.convert_to_numpy(theirs.moving_mean),
        rtol=1e-2,
    )


def test_other_inputs_fall_back_to_the_keras_layer():
    layer = BatchNormalization()
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    assert layer._fused_format(keras.ops.convert_to_tensor(x), None) is None


def test_serialises_as_the_package_layer():
    layer = BatchNormalization(epsilon=1e-3, name="bn")
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is BatchNormalization and restored.epsilon == 1e-3
