"""The thin named variants and the shared docstring of the builders."""

import pytest

from keras_anytime import applications as apps


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, generic",
    [
        (apps.AnytimeResNet20, lambda: apps.AnytimeResNet(depth=20)),
        (apps.AnytimeResNet56, lambda: apps.AnytimeResNet(depth=56)),
        (apps.AnytimeDenseNetBC100, lambda: apps.AnytimeDenseNet(depth=100, growth_rate=12)),
        (apps.MSDNetCIFAR, lambda: apps.MSDNet(**apps.MSDNET_CONFIGS["cifar_anytime"])),
    ],
)
def test_a_named_variant_is_its_generic_configuration(variant, generic):
    built, expected = variant(), generic()
    assert built.builder_config == expected.builder_config
    assert built.count_params() == expected.count_params()


def test_variants_take_the_generic_arguments():
    model = apps.AnytimeResNet32(exit_every=5, classes=3, include_top=True)
    assert model.num_exits == 3 and model.outputs[0].shape[-1] == 3
    assert apps.MSDNetCIFAR(n_blocks=2).num_exits == 2  # a config key can be overridden


@pytest.mark.parametrize(
    "builder", [apps.AnytimeResNet, apps.AnytimeDenseNet, apps.MSDNet, apps.EANN]
)
def test_every_builder_documents_the_shared_arguments(builder):
    doc = builder.__doc__
    assert "{shared arguments}" not in doc
    for arg in ("include_top", "weights", "input_shape", "classifier_activation", "name"):
        assert f"{arg}" in doc
