"""Every shipped preset: re-evaluated on val, and loadable from a non-editable install."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_anytime import datasets, zoo
from keras_anytime.evaluation import evaluate_exits

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", zoo.list_models())
def test_preset_matches_manifest_on_val(name, cifar_dir):
    preset = zoo.get_preset(name)
    model = zoo.load(name)
    rows = evaluate_exits(model, datasets.load("cifar10", "val", data_dir=cifar_dir))
    measured = np.array([r["accuracy"] for r in rows])
    np.testing.assert_allclose(measured, preset["val_accuracy"], atol=0.003)  # 0.3 points
    assert [r["macs"] for r in rows] == preset["macs"]
    assert model.count_params() == preset["params"]


def test_non_editable_install_ships_the_zoo(tmp_path):
    """`pip install .` into a fresh venv (reusing this interpreter's packages for the
    dependencies; the build backend comes from pyproject.toml's [build-system]), then, from
    outside the checkout, the zoo resolves inside site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    script = (
        "import json, keras_anytime\n"
        "from keras_anytime import zoo\n"
        "names = zoo.list_models()\n"
        "for name in names:\n"
        "    zoo.load(name)\n"
        "print(json.dumps({'file': keras_anytime.__file__, 'zoo': str(zoo.zoo_dir()),"
        " 'names': names}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(python), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "site-packages" in result["file"] and "site-packages" in result["zoo"]
    assert result["names"] == zoo.list_models()


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
    """The fields zoo/README.md documents; a preset trained in stages names each earlier
    stage's preset, hash and command, down to one trained from scratch."""
    preset = zoo.get_preset(name)
    assert set(preset) == FIELDS
    assert len(preset["val_accuracy"]) == len(preset["macs"])
    stage = preset["starts_from"]
    assert ("--weights cifar10" in preset["command"]) == (stage is not None)
    while stage is not None:
        assert set(stage) == STAGE_FIELDS
        assert len(stage["sha256"]) == 64 and stage["command"].startswith("keras-anytime train")
        stage = stage["starts_from"]
