import keras
import numpy as np
import pytest
from helpers import adaloss_fit_lowers_loss, assert_round_trip

from keras_anytime.applications import EANN, eann_members, freeze_members_before
from keras_anytime.applications.eann import member_depths
from keras_anytime.flops import exit_flops


def test_member_depths_grow_by_base():
    assert member_depths(3, 2, 8) == [8, 14, 26]  # 1, 2, 4 units per stage
    assert member_depths(4, 2, 8) == [8, 14, 26, 50]
    assert member_depths(3, 3, 14) == [14, 38, 110]  # 2, 6, 18 units per stage
    assert member_depths(3, 1.5, 14) == [14, 20, 32]  # 2, 3, 4.5 -> 5 units


def test_exits_ordered_by_cumulative_cost_and_the_bound():
    base = 2
    model = EANN(num_members=3, base=base, exit_every=3)
    members = eann_members(model)
    assert [m.name for m in members] == ["member_1", "member_2", "member_3"]
    # ResNet-8, -14, -26: 3, 6, 12 units -> 1, 2, 4 exits (every 3 units, from the last)
    assert [len(m.outputs) for m in members] == [1, 2, 4]
    assert model.output_names == [f"exit_{k}" for k in range(1, 8)]
    assert all(tuple(o.shape) == (None, 10) for o in model.outputs)

    macs = exit_flops(model)
    assert all(a < b for a, b in zip(macs, macs[1:]))
    own = [exit_flops(m) for m in members]  # each member alone
    # member k's exits cost member k's own cost plus members 1..k-1 run to their end
    assert macs[:1] == own[0]
    assert macs[1:3] == [own[0][-1] + c for c in own[1]]
    assert macs[3:] == [own[0][-1] + own[1][-1] + c for c in own[2]]
    # costs grow by about `base` (the 3x3 stem and the heads make it a bit more)
    finals = [o[-1] for o in own]
    assert all(1.9 < b / a < 2.2 for a, b in zip(finals, finals[1:]))
    # the paper's bound: the whole sequence costs at most base / (base - 1) times its
    # largest member, since sum_k c * base^(k-1) < base / (base - 1) * c * base^(K-1)
    assert finals[-1] < macs[-1] <= base / (base - 1) * finals[-1]


def test_include_top_false():
    model = EANN(num_members=2, exit_every=3, include_top=False, input_shape=(32, 32, 3))
    assert model.output_names == ["features_1", "features_2", "features_3"]
    assert [tuple(o.shape) for o in model.outputs] == [(None, 8, 8, 64)] + [
        (None, 16, 16, 32),
        (None, 8, 8, 64),
    ]


@pytest.mark.slow
def test_member_by_member_training_and_round_trip(tmp_path, tiny_data):
    x, y = tiny_data
    model = EANN(num_members=2, exit_every=3)  # ResNet-8 (1 exit), ResNet-14 (2 exits)
    first, second = eann_members(model)
    before = [w.copy() for w in model.predict(x[:8], verbose=0)]
    # member 2 gets its own AdaLoss run; its layers are the EANN's
    start, end = adaloss_fit_lowers_loss(second, x, y)
    assert end < start
    after = model.predict(x[:8], verbose=0)
    np.testing.assert_array_equal(before[0], after[0])  # member 1 untouched
    assert not np.allclose(before[2], after[2])

    freeze_members_before(model, 2)
    assert not first.trainable and second.trainable
    frozen = [w.copy() for w in first.get_weights()]
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    for a, b in zip(frozen, first.get_weights()):
        np.testing.assert_array_equal(a, b)

    loaded = assert_round_trip(model, tmp_path / "eann.keras", x[:4])
    assert [m.name for m in eann_members(loaded)] == ["member_1", "member_2"]
    assert exit_flops(loaded) == exit_flops(model)


@pytest.mark.slow
def test_weights_file_with_and_without_top(tmp_path, tiny_data):
    x = tiny_data[0][:2]
    model = EANN(num_members=2, exit_every=3)
    path = str(tmp_path / "eann.weights.h5")
    model.save_weights(path)
    again = EANN(num_members=2, exit_every=3, weights=path)
    for a, b in zip(model.predict(x, verbose=0), again.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    backbone = EANN(num_members=2, exit_every=3, weights=path, include_top=False)
    member = eann_members(model)[1]
    read_by_last_head = member.get_layer("exit_2_head_bn").input
    expected = keras.Model(member.inputs, read_by_last_head).predict(x, verbose=0)
    np.testing.assert_allclose(backbone.predict(x, verbose=0)[-1], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"base": 1}, "base must be a number > 1"),
        ({"base": 1.1}, "too close to 1"),
        ({"first_depth": 10}, "6n\\+2"),
        ({"num_members": 0}, "num_members"),
        ({"depths": []}, "at least one"),
        ({"depths": [8, 21]}, "not a ResNet depth"),
        ({"exit_every": 0}, "exit_every"),
        ({"input_shape": (2, 2, 3)}, "too small"),
        ({"weights": "imagenet"}, "neither a preset"),
        ({"weights": "cifar10"}, "No 'cifar10' checkpoint for EANN"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EANN(**kwargs)


def test_freeze_members_before_checks_k():
    with pytest.raises(ValueError, match="member number in 1..2"):
        freeze_members_before(EANN(num_members=2, exit_every=9), 3)
