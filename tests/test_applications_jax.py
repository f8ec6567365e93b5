"""The new families build, train (AdaLoss), round-trip and count MACs on JAX too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import JAX_ENV, small_family_models

from keras_anytime.flops import exit_flops

pytestmark = pytest.mark.slow

SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import keras, numpy as np
from helpers import small_family_models
from keras_anytime.applications import eann_members
from keras_anytime.callbacks import AdaLoss
from keras_anytime.flops import exit_flops
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (8, 32, 32, 3)).astype("float32")
y = rng.integers(0, 10, 8)
out = {"backend": keras.config.backend()}
for name, model in small_family_models().items():
    target = eann_members(model)[1] if name == "eann" else model
    target.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    target.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[AdaLoss(update_every=1)])
    path = f"{sys.argv[2]}/{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    pairs = zip(model(x[:2]), loaded(x[:2]))  # eager: no compilation
    out[name] = {
        "same": all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs),
        "weights": np.array(target.exit_weighting.weights_var).tolist(),
        "macs": exit_flops(loaded),
    }
print(json.dumps(out))
"""


def test_families_on_jax(tmp_path):
    pytest.importorskip("jax")
    tests_dir = Path(__file__).resolve().parent
    env = {
        **os.environ,
        **JAX_ENV,
        "PYTHONPATH": os.pathsep.join([str(tests_dir.parent), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tests_dir), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["backend"] == "jax"
    for name, model in small_family_models().items():  # the same models, this backend
        assert out[name]["same"], name
        assert len(out[name]["weights"]) > 1 and min(out[name]["weights"]) < 1.0  # AdaLoss ran
        assert out[name]["macs"] == exit_flops(model), name
