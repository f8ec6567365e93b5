import keras
import numpy as np
import pytest

from keras_anytime.applications import AnytimeResNet
from keras_anytime.flops import exit_flops


@pytest.mark.parametrize("depth,units", [(20, 9), (32, 15), (44, 21), (56, 27)])
def test_cifar_exit_count_and_shapes(depth, units):
    model = AnytimeResNet(depth)
    assert model.output_names == [f"exit_{k}" for k in range(1, units + 1)]
    assert all(tuple(o.shape) == (None, 10) for o in model.outputs)


def test_resnet110_exit_count():
    assert len(AnytimeResNet(110, exit_every=9).outputs) == 6  # 54 units: 54, 45, ..., 9


def test_imagenet_forms():
    assert len(AnytimeResNet(18).outputs) == 8
    model = AnytimeResNet(50, exit_every=4, classes=1000)
    assert len(model.outputs) == 4  # 16 bottleneck units: 4, 8, 12, 16
    assert tuple(model.outputs[0].shape) == (None, 1000)
    # the 50-layer CIFAR form (n = 8) on small inputs
    assert len(AnytimeResNet(50, input_shape=(32, 32, 3)).outputs) == 24


def test_exit_placement_counts_back_from_last():
    model = AnytimeResNet(20, exit_every=4)  # 9 units: exits after units 1, 5, 9
    heads = [model.get_layer(f"exit_{k}_head_bn") for k in (1, 2, 3)]
    sources = [h.input._keras_history.operation.name for h in heads]
    assert sources == ["stage1_unit1_add", "stage2_unit2_add", "stage3_unit3_add"]


def test_predict_shapes(tiny_data):
    x, _ = tiny_data
    out = AnytimeResNet(20, exit_every=3).predict(x[:4], verbose=0)
    assert len(out) == 3 and all(o.shape == (4, 10) for o in out)
    assert np.allclose(out[-1].sum(axis=1), 1.0, atol=1e-5)


def test_include_top_false_returns_feature_maps():
    model = AnytimeResNet(20, exit_every=4, include_top=False, input_shape=(32, 32, 3))
    assert model.output_names == ["features_1", "features_2", "features_3"]
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 32, 32, 16),
        (None, 16, 16, 32),
        (None, 8, 8, 64),
    ]
    assert not any(layer.name.startswith("exit_") for layer in model.layers)


def test_input_tensor():
    import keras

    inp = keras.Input((32, 32, 3))
    model = AnytimeResNet(20, input_tensor=inp)
    assert model.inputs[0] is inp


def test_last_exit_costs_match_resnet20():
    macs = exit_flops(AnytimeResNet(20))
    assert 40e6 < macs[-1] < 42e6
    assert all(a < b for a, b in zip(macs, macs[1:]))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"depth": 21}, "6n\\+2"),
        ({"depth": 20, "exit_every": 0}, "exit_every"),
        ({"depth": 20, "weights": "imagenet21k"}, "neither a preset"),
        ({"depth": 56, "weights": "cifar10"}, "No .cifar10. checkpoint.*resnet20_cifar10"),
        ({"depth": 20, "input_shape": (2, 2, 3)}, "too small"),
        ({"depth": 18, "input_shape": (16, 16, 3)}, "too small"),
        ({"depth": 20, "width": 0}, "width"),
        ({"depth": 20, "variant": "imagenet"}, "not a ResNet depth"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnytimeResNet(**kwargs)


def test_truncate_keeps_the_first_exits_and_shares_weights(tiny_data):
    from keras_anytime.models import AnytimeModel, truncate

    x, _ = tiny_data
    model = AnytimeResNet(8)
    short = truncate(model, 2)
    assert isinstance(short, AnytimeModel) and short.output_names == ["exit_1", "exit_2"]
    assert len(short.weights) < len(model.weights)  # the last unit is not part of it
    full = model.predict(x[:4], verbose=0)
    for a, b in zip(short.predict(x[:4], verbose=0), full[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert exit_flops(short) == exit_flops(model)[:2]
    with pytest.raises(ValueError, match=r"`num_exits` must be in 1\.\.3"):
        truncate(model, 4)


def test_builders_refuse_channels_first_clearly():
    from keras_anytime.applications import MSDNet

    keras.config.set_image_data_format("channels_first")
    try:
        for build in (lambda: AnytimeResNet(8), lambda: MSDNet(2, 1, 1, n_channels=4)):
            with pytest.raises(ValueError, match="channels_last.*set_image_data_format"):
                build()
    finally:
        keras.config.set_image_data_format("channels_last")
