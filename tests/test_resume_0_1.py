"""A run whose backup keras-anytime 0.1 wrote resumes with this version.

tests/data/run_0_1 is the folder of `keras-anytime train --depth 8 --weighting adaloss
--recipe paper --epochs 3 --steps-per-epoch 3 --batch-size 32 --update-every 2 --precision
float32 --jit-compile off` as 0.1 left it when killed after its first epoch: the backup
(weights, optimizer and AdaLoss state), run.json and history.csv.
"""

import csv
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

FIXTURE = REPO / "tests" / "data" / "run_0_1"


def _exit_weighting(weights_file) -> dict:
    """The model's exit-weighting state (AdaLoss's averages, weights and step count)."""
    with h5py.File(weights_file, "r") as f:
        return {name: np.array(value) for name, value in f["vars"].items()}


def test_a_0_1_backup_resumes_at_its_next_epoch(cifar_dir, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(FIXTURE, out)
    before = _exit_weighting(out / "backup" / "latest.weights.h5")
    assert before["exit_weighting_steps"] == 3  # one epoch of 3 steps
    recorded = json.loads((out / "run.json").read_text())
    argv = recorded["argv"][1:]
    argv[argv.index("--out") + 1] = str(out)
    argv[argv.index("--data-dir") + 1] = str(cifar_dir)
    done = subprocess.run(
        [sys.executable, "-m", "keras_anytime.cli", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Epoch 1/3" not in done.stdout and "Epoch 2/3" in done.stdout
    with open(out / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    # the learning rate went on along the schedule the first start began
    assert float(rows[1]["learning_rate"]) < float(rows[0]["learning_rate"])
    starts = json.loads((out / "run.json").read_text())["starts"]
    assert [start["epoch"] for start in starts] == [0, 1]
    assert (out / "eval.json").is_file() and not (out / "backup").exists()
    # AdaLoss went on from its saved state: 3 steps before the kill and 6 after, not 6 alone
    import keras

    import keras_anytime  # noqa: F401  (registers AnytimeModel)

    model = keras.saving.load_model(out / "model.keras")
    assert int(model.exit_weighting.steps.numpy()) == 9
