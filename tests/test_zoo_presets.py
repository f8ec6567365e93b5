"""Every shipped preset: re-evaluated on val, and loadable from a non-editable install."""

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from keras_anytime import applications, datasets, presets, zoo
from keras_anytime.evaluation import evaluate_exits

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list_models())
def test_preset_matches_manifest_on_val(name, cifar_dir):
    preset = zoo.get_preset(name)
    model = zoo.load(name)
    assert model.builder_config == (preset["builder"], preset["config"])
    rows = evaluate_exits(model, datasets.load("cifar10", "val", data_dir=cifar_dir))
    measured = np.array([r["accuracy"] for r in rows])
    np.testing.assert_allclose(measured, preset["val_accuracy"], atol=0.003)  # 0.3 points
    assert [r["macs"] for r in rows] == preset["macs"]
    assert model.count_params() == preset["params"]


@pytest.mark.slow
def test_the_wheel_ships_the_package_and_the_zoo(tmp_path):
    """The built wheel (pyproject.toml's isolated build) holds every module of the
    package, the manifest and each preset's weight file with the manifest's sha256 under
    keras_anytime/_zoo, and none of the repository's maintainer tools or training folders."""
    source = tmp_path / "source"  # a copy: an in-tree build would leave build/ in the checkout
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "build", "runs", "*.egg-info"),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = tmp_path.glob("keras_anytime-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("keras_anytime/_zoo/manifest.json"))
        for preset in manifest["presets"]:
            data = archive.read(f"keras_anytime/_zoo/{preset['file']}")
            assert hashlib.sha256(data).hexdigest() == preset["sha256"], preset["name"]
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "keras_anytime").rglob("*.py")}
    assert modules <= names
    assert [p["name"] for p in manifest["presets"]] == [
        p["name"] for p in json.loads((REPO / "zoo" / "manifest.json").read_text())["presets"]
    ]
    assert not [n for n in names if n.endswith("add_preset.py") or "_training" in n]


FIELDS = {
    "name", "builder", "config", "weights", "classes", "file", "sha256", "data", "train_split",
    "selected_on", "command", "epochs", "epochs_completed", "wall_time_hours", "hardware",
    "val_accuracy", "macs", "params", "versions", "starts_from", "note",
}  # fmt: skip
STAGE_FIELDS = {
    "name", "sha256", "command", "epochs_completed", "wall_time_hours", "hardware",
    "val_accuracy_last_exit", "starts_from",
}  # fmt: skip


@pytest.mark.parametrize("name", zoo.list_models())
def test_manifest_entry_has_every_field_and_its_training_stages(name):
    """The fields zoo/README.md documents (`tag` is optional); a preset trained in stages
    names each earlier stage's preset, hash and command, down to one trained from scratch."""
    preset = zoo.get_preset(name)
    assert FIELDS <= set(preset) <= FIELDS | {"tag"}
    assert len(preset["val_accuracy"]) == len(preset["macs"])
    stage = preset["starts_from"]
    assert ("--weights cifar10" in preset["command"]) == (stage is not None)
    while stage is not None:
        assert set(stage) == STAGE_FIELDS
        assert len(stage["sha256"]) == 64 and stage["command"].startswith("keras-anytime train")
        stage = stage["starts_from"]


# The builder calls zoo/README.md gives for each preset.
README_CALLS = {
    "resnet20_cifar10": lambda **kw: applications.AnytimeResNet(depth=20, **kw),
    "resnet32_cifar10": lambda **kw: applications.AnytimeResNet32(**kw),
    "densenet40_cifar10": lambda **kw: applications.AnytimeDenseNet(
        depth=40, growth_rate=12, exit_every=2, **kw
    ),
    "msdnet_cifar10": lambda **kw: applications.MSDNet(**kw),
}


@pytest.mark.parametrize("name", zoo.list_models())
def test_the_builder_call_of_each_preset_names_it_by_its_tag(name):
    """A builder's configuration (all its network arguments, defaults included) and the
    preset's tag resolve to the preset, so `weights="cifar10"` loads its file."""
    preset = zoo.get_preset(name)
    assert name in README_CALLS, f"zoo/README.md's table and README_CALLS lack {name}"
    builder, config = README_CALLS[name]().builder_config
    assert (builder, config) == (preset["builder"], preset["config"])
    assert presets.lookup(builder, config, presets.tag(preset), classes=10)["name"] == name
    assert presets.lookup(builder, config, name)["sha256"] == preset["sha256"]
