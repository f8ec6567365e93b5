"""Weight resolution: presets by name (hash-checked), files by path, and the errors."""

import json

import numpy as np
import pytest

from keras_anytime import presets, zoo
from keras_anytime.applications import AnytimeResNet

CONFIG = {"depth": 8, "width": 16, "exit_every": 2, "variant": "cifar"}


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A zoo folder with one preset saved from a random AnytimeResNet-8."""
    model = AnytimeResNet(**CONFIG)
    model.save_weights(tmp_path / "r8.weights.h5")
    preset = {
        "name": "resnet8_test",
        "builder": "AnytimeResNet",
        "config": CONFIG,
        "weights": "cifar10",
        "classes": 10,
        "file": "r8.weights.h5",
        "sha256": presets.sha256(tmp_path / "r8.weights.h5"),
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"presets": [preset]}))
    monkeypatch.setattr(presets, "zoo_dir", lambda: tmp_path)
    presets.manifest.cache_clear()
    yield tmp_path, model
    presets.manifest.cache_clear()


def _x():
    return np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")


def test_preset_loads_by_builder_and_by_name(fake_zoo):
    _, saved = fake_zoo
    assert zoo.list_models() == ["resnet8_test"]
    expected = saved.predict(_x(), verbose=0)
    for model in (AnytimeResNet(**CONFIG, weights="cifar10"), zoo.load("resnet8_test")):
        for a, b in zip(model.predict(_x(), verbose=0), expected):
            np.testing.assert_array_equal(a, b)


def test_backbone_only_keeps_the_weights(fake_zoo):
    _, saved = fake_zoo
    backbone = AnytimeResNet(**CONFIG, weights="cifar10", include_top=False, classes=3)
    assert backbone.output_names == ["features_1", "features_2"]
    np.testing.assert_array_equal(
        backbone.get_layer("stem_conv").kernel, saved.get_layer("stem_conv").kernel
    )


def test_classes_must_match_the_pretrained_top(fake_zoo):
    with pytest.raises(ValueError, match="10-class top, but classes=100"):
        AnytimeResNet(**CONFIG, weights="cifar10", classes=100)


def test_no_checkpoint_for_config_names_the_presets(fake_zoo):
    with pytest.raises(ValueError, match="No 'cifar10' checkpoint.*resnet8_test"):
        AnytimeResNet(depth=20, weights="cifar10")


def test_hash_mismatch(fake_zoo):
    folder, _ = fake_zoo
    with open(folder / "r8.weights.h5", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="sha256.*corrupt or was replaced"):
        AnytimeResNet(**CONFIG, weights="cifar10")


def test_missing_file(fake_zoo):
    folder, _ = fake_zoo
    (folder / "r8.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="missing.*resnet8_test"):
        AnytimeResNet(**CONFIG, weights="cifar10")


def test_unknown_preset_name(fake_zoo):
    with pytest.raises(ValueError, match="Unknown zoo preset 'nope'.*resnet8_test"):
        zoo.load("nope")


def test_weights_from_a_file_path(fake_zoo, tmp_path):
    folder, saved = fake_zoo
    model = AnytimeResNet(**CONFIG, weights=str(folder / "r8.weights.h5"))
    np.testing.assert_array_equal(
        model.predict(_x(), verbose=0)[-1], saved.predict(_x(), verbose=0)[-1]
    )
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="Could not load weights from .*corrupt"):
        AnytimeResNet(**CONFIG, weights=str(corrupt))
    with pytest.raises(ValueError, match="Could not load weights"):
        AnytimeResNet(depth=14, weights=str(folder / "r8.weights.h5"))  # other configuration


def test_the_registry_resolves_families_and_builder_names():
    from keras_anytime import applications, registry

    assert registry.builder("resnet") is applications.AnytimeResNet
    assert registry.builder("MSDNet") is applications.MSDNet
    assert set(registry.FAMILIES) >= {"resnet", "densenet", "msdnet", "eann"}
    with pytest.raises(ValueError, match="Unknown model family 'vgg'.*resnet"):
        registry.builder("vgg")
