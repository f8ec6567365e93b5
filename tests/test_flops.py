import keras
from keras import layers

from keras_anytime.flops import exit_flops
from keras_anytime.layers import RunAfter
from keras_anytime.models import AnytimeModel


def test_exit_flops_by_hand():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)  # 8*8*4 * 3*3*3 = 6912
    x = layers.BatchNormalization()(x)
    h1 = layers.GlobalAveragePooling2D()(x)
    e1 = layers.Dense(5, name="exit_1")(h1)  # 4*5 = 20
    y = layers.Conv2D(6, 3, strides=2, padding="same")(x)  # 4*4*6 * 3*3*4 = 3456
    y = layers.DepthwiseConv2D(3, padding="same")(y)  # 4*4*6 * 9 = 864
    h2 = layers.Flatten()(y)
    e2 = layers.Dense(2, name="exit_2")(h2)  # 96*2 = 192
    model = AnytimeModel(inp, [e1, e2])
    # exit 2 excludes exit 1's head (its Dense)
    assert exit_flops(model) == [6912 + 20, 6912 + 3456 + 864 + 192]


def _two_exit_model():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)  # 6912
    e1 = layers.Dense(5, name="exit_1")(layers.GlobalAveragePooling2D()(x))  # 20
    y = layers.Conv2D(6, 3, strides=2, padding="same")(x)  # 3456
    e2 = layers.Dense(2, name="exit_2")(layers.Flatten()(y))  # 96 * 2 = 192
    return AnytimeModel(inp, [e1, e2])


def test_earlier_exits_and_nested_models():
    inner = _two_exit_model()
    assert exit_flops(inner) == [6912 + 20, 6912 + 3456 + 192]
    assert exit_flops(inner, include_earlier_exits=True) == [6932, 6932 + 3456 + 192]
    # nested as a layer: the part of its graph each output needs; called twice, twice
    inp = keras.Input((8, 8, 3))
    first = inner(inp)
    second = inner(layers.Conv2D(3, 1, use_bias=False)(inp))  # 8*8*3*3 = 576
    outer = AnytimeModel(
        inp, [layers.Identity(name=f"exit_{k}")(t) for k, t in enumerate([*first, *second], 1)]
    )
    assert exit_flops(outer) == [6932, 10560, 576 + 6932, 576 + 10560]


def test_lazy_counts_leave_out_run_after_ordering():
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inp)  # 6912
    side = layers.Conv2D(2, 1, use_bias=False)(x)  # 8*8*2*4 = 512, read by exit 2 only
    e1 = layers.Dense(5, name="exit_1")(
        layers.GlobalAveragePooling2D()(RunAfter()([x, side]))  # 20
    )
    e2 = layers.Dense(2, name="exit_2")(layers.GlobalAveragePooling2D()(side))  # 4
    model = AnytimeModel(inp, [e1, e2])
    assert exit_flops(model) == [6912 + 512 + 20, 6912 + 512 + 4]
    assert exit_flops(model, lazy=True) == [6912 + 20, 6912 + 512 + 4]
    assert exit_flops(model, include_earlier_exits=True, lazy=True) == [6932, 6932 + 516]
    assert exit_flops(model, include_earlier_exits=True) == [7444, 7448]
