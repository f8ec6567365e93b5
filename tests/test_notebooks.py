"""Every notebook runs top to bottom in quick mode (KERAS_ANYTIME_QUICK=1)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(notebook, cifar_dir, tmp_path):
    env = {**os.environ, "KERAS_ANYTIME_QUICK": "1", "KERAS_ANYTIME_DATA": str(cifar_dir)}
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=600", "--output-dir", str(tmp_path), str(notebook)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / notebook.name).is_file()
