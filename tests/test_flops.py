import keras
from keras import layers

from keras_anytime.flops import exit_flops
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
