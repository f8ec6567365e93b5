"""The backend-neutral core of the suite, run again under JAX and PyTorch.

The rest of the suite runs on TensorFlow (the package's default backend); here each
other backend gets its own pytest process (a Keras backend is process-wide) over the
tests of what must work everywhere: the builders, `AnytimeModel` with AdaLoss in `fit`,
`flops`, `EarlyExitPredictor`, evaluation, the layers, the recipes and zoo loading.
tf.data pipelines and tf.distribute are TensorFlow-only and stay out.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import JAX_ENV

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
CORE = [
    "test_adaloss.py",
    "test_densenet.py",
    "test_eann.py",
    "test_evaluation.py",
    "test_flops.py",
    "test_inference.py",
    "test_layers.py",
    "test_msdnet.py",
    "test_recipes.py",
    "test_resnet.py",
    "test_weighting.py",
    "test_zoo.py",
]
# Left out of the other backends' runs (they run on TensorFlow in the main suite):
# a test that already starts a process per backend, and parameter and MAC counts of large
# models, arithmetic on the graph that no backend changes, whose builds took 35-45 s each
# under JAX (an initializer compiled per weight shape). Node-id prefixes: the last one
# also leaves out test_densenet_bc_100_single_exit_parameters.
TENSORFLOW_ONLY = [
    "test_adaloss.py::test_same_weights_on_jax_torch_and_tensorflow",
    "test_msdnet.py::test_imagenet_models_match_reference_figures",
    "test_densenet.py::test_densenet121_matches_keras_applications",
    "test_densenet.py::test_densenet_bc_100",
]
ENVS = {"jax": JAX_ENV, "torch": {"KERAS_BACKEND": "torch"}}


@pytest.mark.parametrize("backend", sorted(ENVS))
def test_core_suite_passes_on(backend):
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [str(TESTS / name) for name in CORE]
        + [f"--deselect=tests/{test}" for test in TENSORFLOW_ONLY],
        cwd=TESTS.parent,
        env={**os.environ, **ENVS[backend]},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"{backend}: {summary}\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 100, summary
