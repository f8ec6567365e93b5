"""The API reference builds from the docstrings without a warning (pdoc)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_api_reference_builds_without_warnings(tmp_path):
    env = {**os.environ, "PDOC_ALLOW_EXEC": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    built = subprocess.run(
        [sys.executable, "-m", "pdoc", "-d", "google", "keras_anytime", "-o", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    warnings = [line for line in built.stderr.splitlines() if line.startswith("Warn")]
    assert warnings == []
    assert (tmp_path / "keras_anytime" / "training.html").is_file()
    assert "TrainConfig" in (tmp_path / "keras_anytime" / "training.html").read_text()
