"""The builders take the arguments they share with keras.applications as a keras.applications
user would pass them: `pooling`, the default input of a feature extractor, input channel
counts, `input_tensor` against `input_shape`, and the activation allowed with a preset."""

from functools import partial

import keras
import numpy as np
import pytest

from keras_anytime import applications as apps
from keras_anytime.datasets import CIFAR10_MEAN, CIFAR10_VARIANCE

# One small configuration per family, so every test builds in about a second.
FAMILIES = {
    "resnet": partial(apps.AnytimeResNet, depth=8),
    "densenet": partial(apps.AnytimeDenseNet, depth=10, growth_rate=4),
    "msdnet": partial(
        apps.MSDNet,
        n_blocks=2,
        step=1,
        base=1,
        n_channels=4,
        growth_rate=2,
        gr_factor="1-2",
        bn_factor="1-1",
    ),
    "eann": partial(apps.EANN, num_members=2, exit_every=3),
}
family = pytest.mark.parametrize("build", FAMILIES.values(), ids=FAMILIES.keys())

# Every builder, generic and named; the refusals below come before anything is built.
BUILDERS = [
    apps.AnytimeResNet,
    apps.AnytimeResNet20,
    apps.AnytimeResNet32,
    apps.AnytimeResNet56,
    apps.AnytimeResNet110,
    apps.AnytimeDenseNet,
    apps.AnytimeDenseNetBC100,
    apps.MSDNet,
    apps.MSDNetCIFAR,
    apps.MSDNetImageNet,
    apps.EANN,
]
every_builder = pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)


def images(height, width, channels=3, batch=2):
    return np.random.default_rng(0).uniform(0, 255, (batch, height, width, channels))


def layer_names(model):
    """The names of the model's layers but its input, which the user names."""
    return [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def normalizations(model):
    """The model's Normalization layers, nested models (EANN members) included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += normalizations(layer)
        elif isinstance(layer, keras.layers.Normalization):
            found.append(layer)
    return found


# pooling


@family
@pytest.mark.parametrize("pooling, reduce", [("avg", np.mean), ("max", np.max)])
def test_pooling_pools_every_feature_map(build, pooling, reduce):
    model = build(include_top=False, pooling=pooling)
    names = [f"features_{k}" for k in range(1, len(model.outputs) + 1)]
    assert model.output_names == names
    maps = keras.Model(model.inputs[0], [model.get_layer(n).input for n in names])
    x = images(32, 32)
    for pooled, fmap in zip(model(x), maps(x)):
        assert pooled.shape == (2, fmap.shape[-1])
        np.testing.assert_allclose(pooled, reduce(fmap, axis=(1, 2)), rtol=1e-5, atol=1e-5)


@family
def test_pooling_is_ignored_with_the_top(build):
    model = build(include_top=True, pooling="avg", classes=3)
    assert model.output_names[0] == "exit_1"
    assert all(tuple(o.shape) == (None, 3) for o in model.outputs)


@every_builder
def test_an_unknown_pooling_is_refused(builder):
    with pytest.raises(ValueError, match='pooling must be None, "avg" or "max", got \'mean\''):
        builder(include_top=False, pooling="mean")


# the default input of a feature extractor


@family
def test_a_feature_extractor_takes_images_of_any_size(build):
    model = build(include_top=False)
    assert tuple(model.inputs[0].shape) == (None, None, None, 3)
    for height, width in ((64, 64), (48, 40)):
        outputs = model(images(height, width, batch=1))
        assert all(len(o.shape) == 4 and o.shape[0] == 1 for o in outputs)
    assert tuple(build().inputs[0].shape) == (None, 32, 32, 3)  # with the top: the default


def test_the_imagenet_form_defaults_to_224_pixels_with_the_top_only():
    with_top = apps.AnytimeResNet(18, width=4, exit_every=4)
    assert tuple(with_top.inputs[0].shape) == (None, 224, 224, 3)
    assert with_top.builder_config[1]["variant"] == "imagenet"
    without = apps.AnytimeResNet(18, width=4, exit_every=4, include_top=False, pooling="avg")
    assert tuple(without.inputs[0].shape) == (None, None, None, 3)
    assert [o.shape for o in without(images(64, 64, batch=1))] == [(1, 8), (1, 32)]


def test_a_pretrained_feature_extractor_takes_images_of_any_size():
    # classifier_activation does not matter without the top, as in keras.applications
    backbone = apps.AnytimeResNet20(
        weights="cifar10", include_top=False, pooling="avg", classifier_activation="relu"
    )
    assert tuple(backbone.inputs[0].shape) == (None, None, None, 3)
    assert backbone(images(64, 64, batch=1))[-1].shape == (1, 64)


# input channels


@family
@pytest.mark.parametrize("channels, given", [(1, "input_shape"), (4, "input_tensor")])
def test_any_channel_count_builds_without_pretrained_weights(build, channels, given):
    shape = (32, 32, channels)
    arg = {"input_shape": shape} if given == "input_shape" else {"input_tensor": keras.Input(shape)}
    model = build(**arg)
    assert tuple(model.inputs[0].shape) == (None, *shape)
    assert all(np.isfinite(o).all() for o in model(images(*shape)))
    for layer in normalizations(model):
        # not RGB: every channel gets the average of the RGB statistics
        assert layer.get_config()["mean"] == pytest.approx(sum(CIFAR10_MEAN) / 3)
        assert layer.get_config()["variance"] == pytest.approx(sum(CIFAR10_VARIANCE) / 3)


def test_the_normalisation_of_one_channel_and_of_rgb():
    grey = apps.AnytimeResNet(8, input_shape=(8, 8, 1))
    normalized = keras.Model(grey.inputs[0], grey.get_layer("normalize").output)
    mean, variance = sum(CIFAR10_MEAN) / 3, sum(CIFAR10_VARIANCE) / 3
    np.testing.assert_allclose(
        normalized(np.full((1, 8, 8, 1), 200.0)), (200.0 - mean) / np.sqrt(variance), rtol=1e-5
    )
    rgb = apps.AnytimeResNet(8).get_layer("normalize").get_config()
    assert rgb["mean"] == list(CIFAR10_MEAN) and rgb["variance"] == list(CIFAR10_VARIANCE)
    raw = apps.AnytimeResNet(8, input_shape=(8, 8, 1), include_preprocessing=False)
    assert not normalizations(raw)


@every_builder
@pytest.mark.parametrize("given", ["input_shape", "input_tensor"])
def test_pretrained_weights_need_three_channels(builder, given):
    shape = (32, 32, 1)
    arg = {"input_shape": shape} if given == "input_shape" else {"input_tensor": keras.Input(shape)}
    with pytest.raises(ValueError, match="The input must have 3 channels with weights='cifar10'"):
        builder(weights="cifar10", **arg)


# input_tensor against input_shape


@pytest.mark.parametrize(
    "build, shape, variant",
    [
        (partial(apps.AnytimeResNet, depth=50, width=4, exit_every=8), (32, 32, 3), "cifar"),
        (partial(apps.AnytimeResNet, depth=50, width=4, exit_every=8), (80, 64, 3), "imagenet"),
        (FAMILIES["msdnet"], (32, 32, 3), "cifar"),
        (FAMILIES["msdnet"], (96, 96, 3), "imagenet"),
        (FAMILIES["densenet"], (48, 48, 3), "cifar"),
        (FAMILIES["eann"], (48, 48, 3), None),
    ],
    ids=["resnet50-32px", "resnet50-80px", "msdnet-32px", "msdnet-96px", "densenet", "eann"],
)
def test_input_tensor_builds_the_network_input_shape_builds(build, shape, variant):
    tensor = keras.Input(shape)
    from_tensor, from_shape = build(input_tensor=tensor), build(input_shape=shape)
    assert from_tensor.inputs[0] is tensor
    assert layer_names(from_tensor) == layer_names(from_shape)
    assert from_tensor.count_params() == from_shape.count_params()
    assert [o.shape for o in from_tensor.outputs] == [o.shape for o in from_shape.outputs]
    assert from_tensor.builder_config == from_shape.builder_config
    if variant is not None:
        assert from_tensor.builder_config[1]["variant"] == variant


@every_builder
def test_input_shape_must_agree_with_input_tensor(builder):
    with pytest.raises(ValueError, match=r"input_shape=\(64, 64, 3\) disagrees with input_tensor"):
        builder(input_tensor=keras.Input((32, 32, 3)), input_shape=(64, 64, 3))


def test_input_tensor_must_be_a_keras_tensor():
    with pytest.raises(ValueError, match="input_tensor must be a Keras tensor"):
        apps.AnytimeResNet(8, input_tensor=np.zeros((1, 32, 32, 3)))


# classifier_activation with pretrained weights


@every_builder
@pytest.mark.parametrize("activation", ["relu", keras.activations.sigmoid])
def test_a_preset_allows_only_softmax_or_no_activation(builder, activation):
    with pytest.raises(ValueError, match="Only None and 'softmax' are allowed"):
        builder(weights="cifar10", classifier_activation=activation)


def test_a_preset_with_no_activation_outputs_the_logits():
    x = images(32, 32)
    logits = apps.AnytimeResNet20(weights="cifar10", classifier_activation=None)(x)
    probs = apps.AnytimeResNet20(weights="cifar10")(x)
    for z, p in zip(logits, probs):
        np.testing.assert_allclose(keras.ops.softmax(z), p, rtol=1e-4, atol=1e-6)


def test_a_weights_file_takes_any_activation(tmp_path):
    path = str(tmp_path / "r8.weights.h5")
    apps.AnytimeResNet(8).save_weights(path)
    model = apps.AnytimeResNet(8, weights=path, classifier_activation="sigmoid")
    assert model.get_layer("exit_1").get_config()["activation"] == "sigmoid"


@pytest.mark.parametrize(
    "builder", [apps.AnytimeResNet, apps.AnytimeDenseNet, apps.MSDNet, apps.EANN]
)
def test_the_docstrings_state_the_keras_rules(builder):
    doc = builder.__doc__
    for text in ("pooling:", "input_tensor:", "input_shape:", "(None, None, 3)", '"avg"'):
        assert text in doc
