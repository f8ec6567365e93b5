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
    dependencies), then, from outside the checkout, the zoo resolves inside site-packages."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         str(REPO)],
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
