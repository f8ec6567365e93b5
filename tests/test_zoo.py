"""Weight resolution: presets by name and by tag (hash-checked) through one loader, files by
path, the errors, and the builder configuration a model keeps through saving."""

import json
import zipfile

import keras
import numpy as np
import pytest

from keras_anytime import presets, registry, zoo
from keras_anytime.applications import EANN, AnytimeResNet, eann_members
from keras_anytime.models import AnytimeModel, truncate
from keras_anytime.training import provenance

CONFIG = {"depth": 8, "width": 16, "exit_every": 2, "variant": "cifar"}
EANN_CONFIG = {"num_members": 2, "width": 4}  # members ResNet-8 and ResNet-14


def _entry(folder, name, model, **fields):
    """Save `model`'s weights in `folder` as preset `name`'s file; return its entry."""
    path = folder / f"{name}.weights.h5"
    model.save_weights(path)
    builder, config = model.builder_config
    return {
        "name": name, "builder": builder, "config": config, "weights": "cifar10", "classes": 10,
        "file": path.name, "sha256": presets.sha256(path), "command": f"keras-anytime train {name}",
        "epochs_completed": 1, "wall_time_hours": 0.1, "hardware": "test", "val_accuracy": [0.5],
        "starts_from": None, **fields,
    }  # fmt: skip


def _use_zoo(folder, monkeypatch, entries):
    """Point the preset store at `folder`, with a manifest of `entries`."""
    (folder / "manifest.json").write_text(json.dumps({"presets": entries}))
    monkeypatch.setattr(presets, "zoo_dir", lambda: folder)
    presets.manifest.cache_clear()


@pytest.fixture
def fake_zoo(tmp_path, monkeypatch):
    """A zoo folder with two presets of one AnytimeResNet-8 configuration, saved from two
    random models: `resnet8_test` (tag "cifar10", its `weights`) and `resnet8_test_b`
    (tag "cifar10_b")."""
    first, second = AnytimeResNet(**CONFIG), AnytimeResNet(**CONFIG)
    entries = [
        _entry(tmp_path, "resnet8_test", first),
        _entry(tmp_path, "resnet8_test_b", second, tag="cifar10_b"),
    ]
    _use_zoo(tmp_path, monkeypatch, entries)
    yield tmp_path, first, second
    presets.manifest.cache_clear()


def _x():
    return np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")


def _same_weights(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def test_two_presets_of_one_configuration_resolve_by_name_and_by_tag(fake_zoo):
    _, first, second = fake_zoo
    assert zoo.list_models() == ["resnet8_test", "resnet8_test_b"]
    assert not _same_weights(first, second)
    ways = [(first, "resnet8_test", "cifar10"), (second, "resnet8_test_b", "cifar10_b")]
    for saved, name, tag in ways:
        for model in (
            zoo.load(name),
            zoo.from_preset(name),
            AnytimeResNet(**CONFIG, weights=tag),
            AnytimeResNet(**CONFIG, weights=name),
        ):
            assert _same_weights(model, saved), (name, model)
            assert model.builder_config == saved.builder_config
    expected = first.predict(_x(), verbose=0)
    for a, b in zip(AnytimeResNet(**CONFIG, weights="cifar10").predict(_x(), verbose=0), expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_every_way_to_a_preset_goes_through_the_one_loader(fake_zoo, monkeypatch):
    folder, first, _ = fake_zoo
    eann = EANN(**EANN_CONFIG)
    entries = json.loads((folder / "manifest.json").read_text())["presets"]
    _use_zoo(folder, monkeypatch, [*entries, _entry(folder, "eann_test", eann)])
    loaded, load_weights = [], presets.load_weights

    def spy(model, weights):
        loaded.append(weights["name"] if isinstance(weights, dict) else weights)
        load_weights(model, weights)

    monkeypatch.setattr(presets, "load_weights", spy)
    assert _same_weights(zoo.load("resnet8_test"), first)
    AnytimeResNet(**CONFIG, weights="cifar10", include_top=False)
    assert _same_weights(zoo.load("eann_test"), eann)
    assert _same_weights(EANN(**EANN_CONFIG, weights="cifar10"), eann)
    EANN(**EANN_CONFIG, weights="eann_test", include_top=False)
    assert loaded == ["resnet8_test", "resnet8_test", "eann_test", "eann_test", "eann_test"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: zoo.load("resnet8_test"),
        lambda: AnytimeResNet(**CONFIG, weights="cifar10"),
        lambda: AnytimeResNet(**CONFIG, weights="resnet8_test", include_top=False),
    ],
)
def test_a_hash_mismatch_is_refused(fake_zoo, build):
    folder, _, _ = fake_zoo
    with open(folder / "resnet8_test.weights.h5", "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="'resnet8_test'.*has sha256.*corrupt or was replaced"):
        build()
    assert _same_weights(zoo.load("resnet8_test_b"), fake_zoo[2])  # its file is intact


def test_backbone_only_keeps_the_weights(fake_zoo):
    _, saved, _ = fake_zoo
    backbone = AnytimeResNet(**CONFIG, weights="cifar10", include_top=False, classes=3)
    assert backbone.output_names == ["features_1", "features_2"]
    np.testing.assert_array_equal(
        backbone.get_layer("stem_conv").kernel, saved.get_layer("stem_conv").kernel
    )


def test_from_preset_takes_the_builders_other_arguments(fake_zoo):
    _, saved, _ = fake_zoo
    backbone = zoo.from_preset("resnet8_test_b", include_top=False, pooling="avg")
    assert backbone.output_names == ["features_1", "features_2"]
    assert backbone.outputs[0].shape == (None, 16)
    untrained = zoo.from_preset("resnet8_test", load_weights=False)
    assert untrained.builder_config == saved.builder_config
    assert not _same_weights(untrained, saved)
    with pytest.raises(ValueError, match=r"'resnet8_test' sets \['depth', 'weights'\] itself"):
        zoo.from_preset("resnet8_test", depth=20, weights=None)


def test_classes_must_match_the_pretrained_top(fake_zoo):
    with pytest.raises(ValueError, match="10-class top, but classes=100"):
        AnytimeResNet(**CONFIG, weights="cifar10", classes=100)


def test_no_checkpoint_for_config_names_the_presets(fake_zoo, monkeypatch):
    with pytest.raises(ValueError, match="No 'cifar10' checkpoint.*resnet8_test"):
        AnytimeResNet(depth=20, weights="cifar10")
    folder, first, _ = fake_zoo
    other = _entry(folder, "resnet8_test", first)
    elsewhere = {**other, "name": "resnet14_test", "config": {"depth": 14}, "tag": "t"}
    _use_zoo(folder, monkeypatch, [other, elsewhere])
    with pytest.raises(ValueError, match=r"No 't' checkpoint.*has the presets resnet8_test \(tag"):
        AnytimeResNet(**CONFIG, weights="t")


def test_a_preset_name_must_be_of_the_builders_configuration(fake_zoo):
    with pytest.raises(
        ValueError,
        match=r"Preset 'resnet8_test' is AnytimeResNet with config \{'depth': 8.*not AnytimeResNet "
        r"with config \{'depth': 14.*zoo.from_preset\('resnet8_test'\)",
    ):
        AnytimeResNet(depth=14, weights="resnet8_test")
    with pytest.raises(ValueError, match="3 channels with weights='resnet8_test_b'"):
        AnytimeResNet(**CONFIG, weights="resnet8_test_b", input_shape=(32, 32, 1))


def test_an_unknown_name_or_tag_is_refused(fake_zoo):
    with pytest.raises(ValueError, match="Unknown zoo preset 'nope'.*resnet8_test"):
        zoo.load("nope")
    with pytest.raises(
        ValueError, match=r"'imagenet' is neither a preset name .*a tag \(cifar10, cifar10_b\) nor"
    ):
        AnytimeResNet(**CONFIG, weights="imagenet")


def test_an_ambiguous_manifest_is_refused(fake_zoo, monkeypatch):
    folder, _, _ = fake_zoo
    first, second = json.loads((folder / "manifest.json").read_text())["presets"]
    cases = [
        ({**second, "tag": "cifar10"}, "'resnet8_test' and 'resnet8_test_b' .* tagged 'cifar10'"),
        ({**second, "tag": "resnet8_test"}, "has the tag 'resnet8_test', another preset's name"),
        ({**second, "name": "resnet8_test"}, "two presets named 'resnet8_test'"),
    ]
    for entry, message in cases:
        _use_zoo(folder, monkeypatch, [first, entry])
        with pytest.raises(ValueError, match=message):
            zoo.list_models()


def test_missing_file(fake_zoo):
    folder, _, _ = fake_zoo
    (folder / "resnet8_test.weights.h5").unlink()
    with pytest.raises(FileNotFoundError, match="missing.*resnet8_test"):
        AnytimeResNet(**CONFIG, weights="cifar10")


def test_weights_from_a_file_path(fake_zoo, tmp_path):
    folder, saved, _ = fake_zoo
    model = AnytimeResNet(**CONFIG, weights=str(folder / "resnet8_test.weights.h5"))
    assert _same_weights(model, saved)
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not an h5 file")
    with pytest.raises(ValueError, match="Could not load weights from .*corrupt"):
        AnytimeResNet(**CONFIG, weights=str(corrupt))
    with pytest.raises(ValueError, match="Could not load weights"):  # another configuration
        AnytimeResNet(depth=14, weights=str(folder / "resnet8_test.weights.h5"))


def test_a_run_records_the_preset_its_weights_name(fake_zoo, tmp_path):
    _, saved, _ = fake_zoo
    for weights, name in (("cifar10_b", "resnet8_test_b"), ("resnet8_test", "resnet8_test")):
        record = provenance.starts_from(weights, saved.builder_config, tmp_path / "run")
        assert record["name"] == name
        assert record["sha256"] == presets.get_preset(name)["sha256"]


def test_a_reloaded_model_keeps_its_builder_config(tmp_path):
    for model in (AnytimeResNet(**CONFIG, include_preprocessing=False), EANN(**EANN_CONFIG)):
        model.save(tmp_path / f"{model.name}.keras")
        reloaded = keras.saving.load_model(tmp_path / f"{model.name}.keras", compile=False)
        assert reloaded.builder_config == model.builder_config
        builder, config = reloaded.builder_config
        assert registry.builder(builder)(**config).count_params() == model.count_params()
    members = eann_members(reloaded)
    assert [m.builder_config[1]["depth"] for m in members] == [8, 14]
    defaults = {"base": 2, "first_depth": 8, "exit_every": 1, "include_preprocessing": True}
    assert reloaded.builder_config[1] == {**EANN_CONFIG, **defaults}


def test_a_model_saved_without_builder_config_still_loads(tmp_path):
    model = AnytimeResNet(**CONFIG)
    model.save(tmp_path / "new.keras")
    # A file written before models kept their builder config: the key taken out.
    with (
        zipfile.ZipFile(tmp_path / "new.keras") as new,
        zipfile.ZipFile(tmp_path / "old.keras", "w") as old,
    ):
        for item in new.infolist():
            data = new.read(item)
            if item.filename == "config.json":
                saved = json.loads(data)
                assert saved["config"].pop("builder_config") == list(model.builder_config)
                data = json.dumps(saved)
            old.writestr(item, data)
    reloaded = keras.saving.load_model(tmp_path / "old.keras", compile=False)
    assert reloaded.builder_config is None
    assert _same_weights(reloaded, model)


def test_a_truncated_model_has_no_builder_config(tmp_path):
    cut = truncate(AnytimeResNet(**CONFIG), 1)
    assert cut.builder_config is None and "builder_config" not in cut.get_config()
    cut.save(tmp_path / "cut.keras")
    assert keras.saving.load_model(tmp_path / "cut.keras", compile=False).builder_config is None


def test_builder_config_must_be_a_pair():
    inputs = keras.Input((4,))
    outputs = [keras.layers.Dense(2, name="exit_1")(inputs)]
    with pytest.raises(ValueError, match="builder_config must be a \\(builder name, config"):
        AnytimeModel(inputs, outputs, builder_config="AnytimeResNet")


def test_the_registry_resolves_families_and_builder_names():
    from keras_anytime import applications

    assert registry.builder("resnet") is applications.AnytimeResNet
    assert registry.builder("MSDNet") is applications.MSDNet
    assert set(registry.FAMILIES) >= {"resnet", "densenet", "msdnet", "eann"}
    with pytest.raises(ValueError, match="Unknown model family 'vgg'.*resnet"):
        registry.builder("vgg")
