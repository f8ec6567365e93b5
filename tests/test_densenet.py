import keras
import numpy as np
import pytest
from helpers import adaloss_fit_lowers_loss, assert_round_trip

from keras_anytime.applications import AnytimeDenseNet
from keras_anytime.flops import exit_flops


def densenet_bc_macs_by_hand(n: int, k: int, classes: int) -> int:
    """MACs of a single-exit CIFAR DenseNet-BC, from Huang et al.'s description."""
    macs, c = 32 * 32 * 2 * k * 3 * 9, 2 * k  # 3x3 stem, 3 -> 2k channels
    for block, hw in enumerate([32 * 32, 16 * 16, 8 * 8]):
        for _ in range(n):
            macs += hw * c * 4 * k + hw * 9 * 4 * k * k  # 1x1 to 4k, 3x3 to k
            c += k
        if block < 2:
            macs += hw * c * (c // 2)  # transition 1x1 (then 2x2 average pooling)
            c //= 2
    return macs + c * classes


def test_densenet_bc_100():
    model = AnytimeDenseNet(100)  # growth 12, 3 blocks of 16 units
    assert model.output_names == [f"exit_{k}" for k in range(1, 49)]
    assert all(tuple(o.shape) == (None, 10) for o in model.outputs)
    assert model.get_layer("stem_conv").filters == 24  # 2 * growth
    # transition 1: 24 + 16 * 12 = 216 channels, compressed to 108
    assert model.get_layer("transition1_conv").filters == 108
    macs = exit_flops(model)
    assert all(a < b for a, b in zip(macs, macs[1:]))
    assert macs[-1] == densenet_bc_macs_by_hand(16, 12, 10) == 287_929_692


def test_densenet_bc_100_single_exit_parameters():
    # Huang et al., CVPR 2017, Table 2: DenseNet-BC (L=100, k=12) has 0.8M parameters.
    model = AnytimeDenseNet(100, exit_every=48)
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert len(model.outputs) == 1 and params == pytest.approx(0.8e6, abs=0.05e6)


@pytest.mark.slow
def test_densenet121_matches_keras_applications():
    model = AnytimeDenseNet(121, exit_every=58, classes=1000)  # 58 units: one exit
    reference = keras.applications.DenseNet121(weights=None)
    count = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert count(model) == count(reference) == 7_978_856
    assert len(AnytimeDenseNet(121, exit_every=8, classes=1000).outputs) == 8  # 58, 50, ..., 2


def test_exit_placement_counts_back_from_last():
    model = AnytimeDenseNet(16, growth_rate=4, exit_every=4)  # 6 units: exits after 2 and 6
    sources = [
        model.get_layer(f"exit_{k}_head_bn").input._keras_history.operation.name for k in (1, 2)
    ]
    assert sources == ["block1_unit2_concat", "block3_unit2_concat"]


def test_include_top_false_and_shapes():
    model = AnytimeDenseNet(
        16, growth_rate=4, exit_every=2, include_top=False, input_shape=(32, 32, 3)
    )
    # stem 8; block 1: 8 + 2 * 4 = 16 -> 8; block 2: 16 -> 8; block 3: 16
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, 32, 32, 16),
        (None, 16, 16, 16),
        (None, 8, 8, 16),
    ]
    assert model.output_names == ["features_1", "features_2", "features_3"]


@pytest.mark.slow
def test_round_trip_and_adaloss_training(tmp_path, tiny_data):
    x, y = tiny_data
    model = AnytimeDenseNet(10, growth_rate=4, dropout=0.1)  # 3 units, 3 exits
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    first, last = adaloss_fit_lowers_loss(model, x, y)
    assert last < first
    assert_round_trip(model, tmp_path / "densenet.keras", x[:4])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"depth": 101}, "6n\\+4"),
        ({"depth": 100, "variant": "imagenet"}, "not a DenseNet-BC depth"),
        ({"depth": 100, "growth_rate": 0}, "growth_rate"),
        ({"depth": 100, "exit_every": 0}, "exit_every"),
        ({"depth": 100, "compression": 0}, "compression"),
        ({"depth": 100, "dropout": 1.0}, "dropout"),
        ({"depth": 100, "input_shape": (3, 3, 3)}, "too small"),
        ({"depth": 121, "input_shape": (24, 24, 3)}, "too small"),
        ({"depth": 100, "weights": "imagenet"}, "neither a preset"),
        ({"depth": 100, "weights": "cifar10"}, "No 'cifar10' checkpoint"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AnytimeDenseNet(**kwargs)
