import keras
import numpy as np
import pytest

import keras_anytime
from keras_anytime.applications import AnytimeResNet
from keras_anytime.callbacks import AdaLoss
from keras_anytime.flops import exit_flops
from keras_anytime.inference import EarlyExitPredictor


def test_resnet50_backbone_every_four_blocks():
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    model = keras_anytime.attach_exits(backbone, every=4, classes=7)
    # 16 residual blocks: exits after blocks 4, 8 and 12, and on the output (block 16)
    assert model.output_names == [f"exit_{k}" for k in range(1, 5)]
    assert all(tuple(o.shape) == (None, 7) for o in model.outputs)
    macs = exit_flops(model)
    assert macs == sorted(macs) and len(set(macs)) == 4
    assert (
        EarlyExitPredictor(model).exit_macs[-1] == exit_flops(model, include_earlier_exits=True)[-1]
    )


@pytest.mark.slow
def test_mobilenetv3_backbone_at_named_layers_frozen_trains_only_the_heads():
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3), include_preprocessing=False
    )
    names = [layer.name for layer in backbone.layers if isinstance(layer, keras.layers.Add)]
    model = keras_anytime.attach_exits(backbone, at=[names[2], names[0]], freeze_backbone=True)
    assert model.num_exits == 3
    assert model.get_layer("exit_1").input.shape[-1] <= model.get_layer("exit_2").input.shape[-1]
    frozen = [np.array(w) for w in backbone.trainable_weights + backbone.non_trainable_weights]
    assert backbone.trainable_weights == []
    x = np.random.default_rng(0).uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    y = np.arange(8) % 10
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[AdaLoss(update_every=1)])
    after = [np.array(w) for w in backbone.non_trainable_weights]
    for a, b in zip(frozen, after, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.array(model.exit_weighting.weights_var), 1.0)


@pytest.mark.slow
@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="export traces TF graphs")
@pytest.mark.parametrize("family", ["ResNet50", "MobileNetV3Small"])
def test_exits_on_keras_applications_backbones_export(family, tmp_path):
    import tensorflow as tf

    kwargs = {"include_preprocessing": False} if family.startswith("MobileNet") else {}
    backbone = getattr(keras.applications, family)(
        include_top=False, weights=None, input_shape=(32, 32, 3), **kwargs
    )
    model = keras_anytime.attach_exits(backbone, every=4 if family == "ResNet50" else 3)
    predictor = EarlyExitPredictor(model)
    x = np.random.default_rng(1).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    predictor.thresholds = np.median(predictor.exit_probabilities(x).max(axis=2)[:-1], axis=1)
    probs, exits = predictor.predict(x)
    predictor.export(tmp_path / "served")
    served = tf.saved_model.load(str(tmp_path / "served"))
    out = served.serve(tf.constant(x), tf.constant(1.0))  # hand thresholds serve any budget
    np.testing.assert_array_equal(out["exit"].numpy(), exits)
    np.testing.assert_allclose(out["probabilities"].numpy(), probs, atol=1e-5)


def test_a_single_exit_package_network_gets_heads_and_early_exit(tmp_path):
    single = AnytimeResNet(14, exit_every=99, include_top=False, input_shape=(16, 16, 3))
    backbone = keras.Model(single.inputs, single.outputs[-1])
    model = keras_anytime.attach_exits(backbone, every=2)
    assert model.num_exits == 3  # 6 units: after units 2 and 4, and the output
    predictor = EarlyExitPredictor(model)
    x = np.random.default_rng(0).uniform(0, 255, (12, 16, 16, 3)).astype("float32")
    predictor.calibrate(x, np.zeros(12, "int64"), 0.7)
    probs, exits = predictor.predict(x)
    assert probs.shape == (12, 10) and set(exits) <= {1, 2, 3}
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    with pytest.raises(ValueError, match="exactly one of `at`"):
        keras_anytime.attach_exits(backbone)
    with pytest.raises(ValueError, match=r"No layers named \['nope'\]"):
        keras_anytime.attach_exits(backbone, at=["nope"])
    pooled = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg"
    )
    with pytest.raises(ValueError, match="one 4-D output.*include_top=False"):
        keras_anytime.attach_exits(pooled, every=1)
    with pytest.raises(ValueError, match="every=99 leaves no attachment point"):
        keras_anytime.attach_exits(backbone, every=99)
    last = backbone.outputs[0]._keras_history[0].name
    with pytest.raises(ValueError, match="output, which gets an exit already"):
        keras_anytime.attach_exits(backbone, at=[last])


def test_a_layer_inside_a_nested_model_is_refused_by_name():
    inner = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3), include_preprocessing=False
    )
    inputs = keras.Input((32, 32, 3))
    outer = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="after")(inner(inputs)))
    add = next(layer.name for layer in inner.layers if isinstance(layer, keras.layers.Add))
    with pytest.raises(ValueError, match=rf"\['{add}'\] are inside the nested model"):
        keras_anytime.attach_exits(outer, at=[add])
    assert keras_anytime.attach_exits(inner, at=[add]).num_exits == 2  # the nested model itself
