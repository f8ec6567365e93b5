"""Exported early-exit predictors: a SavedModel that runs with TensorFlow alone and a
LiteRT model, each serving every calibrated budget and giving the Python predictor's exits
and probabilities at the budget it serves."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_anytime.applications import AnytimeResNet
from keras_anytime.inference import EarlyExitPredictor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.config.backend() != "tensorflow", reason="export traces TensorFlow graphs"
    ),
]


BUDGETS = [0.55, 0.75, 0.9]  # calibrated
# (requested budget, the calibrated budget served): the largest at or below the request
VALID = [(0.7, 0.55), (1.0, 0.9)]
# below the smallest (0, negative, NaN): the smallest; above 1: the largest
WRONG = [(-1.0, 0.55), (float("nan"), 0.55), (0.0, 0.55), (2.0, 0.9)]


@pytest.fixture(scope="module")
def calibrated():
    """A 3-exit predictor calibrated at BUDGETS on the first 32 of 64 images."""
    keras.utils.set_random_seed(0)
    model = AnytimeResNet(depth=8, width=4)
    x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, 64)
    predictor = EarlyExitPredictor(model)
    predictor.calibrate(x[:32], y[:32], BUDGETS)
    expected = {b: predictor.predict(x, budget=b) for b in BUDGETS}
    # each budget sends the images to different exits, and every exit takes some
    assert len({tuple(exits) for _, exits in expected.values()}) == len(BUDGETS)
    assert set(np.concatenate([exits for _, exits in expected.values()])) == {1, 2, 3}
    return predictor, x, expected


# Runs with TensorFlow (or the LiteRT interpreter) and NumPy only: argv = the artifact, the
# images (.npy), the budgets to request (JSON), the output .npz; prints the keras modules
# imported. The LiteRT model runs one image at a time.
CALL_WITHOUT_THE_PACKAGE = """
import json, sys
import numpy as np
artifact, images, budgets, out = sys.argv[1], np.load(sys.argv[2]), json.loads(sys.argv[3]), {}
if artifact.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    serve = Interpreter(artifact).get_signature_runner("serve")
    for i, b in enumerate(budgets):
        got = [serve(images=images[j : j + 1], budget=np.float32(b)) for j in range(len(images))]
        out[f"probabilities_{i}"] = np.concatenate([g["probabilities"] for g in got])
        out[f"exit_{i}"] = np.concatenate([g["exit"] for g in got])
        out[f"budget_{i}"] = np.array([g["budget"] for g in got])
else:
    import tensorflow as tf
    served = tf.saved_model.load(artifact)
    default = served.signatures["serving_default"]
    for i, b in enumerate(budgets):
        got = served.serve(tf.constant(images), tf.constant(b, tf.float32))
        again = default(images=tf.constant(images), budget=tf.constant(b, tf.float32))
        for key, value in got.items():
            np.testing.assert_array_equal(value.numpy(), again[key].numpy())
            out[f"{key}_{i}"] = value.numpy()
np.savez(sys.argv[4], **out)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("keras"))))
"""


def call_without_the_package(artifact, x, budgets: list, tmp_path) -> list[dict]:
    """[{"probabilities", "exit", "budget"} for each budget], from a subprocess that
    imports TensorFlow (or the LiteRT interpreter) and NumPy only."""
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run(
        [sys.executable, "-c", CALL_WITHOUT_THE_PACKAGE, str(artifact), str(tmp_path / "x.npy"),
         json.dumps(budgets), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [m for m in json.loads(run.stdout.strip().splitlines()[-1]) if "anytime" in m]
    out = np.load(tmp_path / "out.npz")
    return [{key: out[f"{key}_{i}"] for key in ("probabilities", "exit", "budget")}
            for i in range(len(budgets))]  # fmt: skip


def check_served(predictor, expected, pairs, outputs):
    """Each output: the Python predictor's exits and probabilities at the budget served,
    that budget reported, and on the calibration images (the first 32) at most its MACs."""
    for (_, served), out in zip(pairs, outputs):
        np.testing.assert_array_equal(np.unique(out["budget"]), np.float32(served))
        probs, exits = expected[served]
        np.testing.assert_array_equal(out["exit"], exits)
        np.testing.assert_allclose(out["probabilities"], probs, atol=1e-5)
        assert predictor.average_macs(out["exit"][:32]) <= served * predictor.exit_macs[-1]


@pytest.mark.parametrize("format", ["tf_saved_model", "litert"])
def test_one_artifact_serves_each_budget_without_the_package(calibrated, tmp_path, format):
    predictor, x, expected = calibrated
    artifact = tmp_path / ("served.tflite" if format == "litert" else "served")
    predictor.export(artifact, format=format)
    outputs = call_without_the_package(artifact, x, [b for b, _ in VALID], tmp_path)
    check_served(predictor, expected, VALID, outputs)
    for requested, served in VALID:
        np.testing.assert_array_equal(
            predictor.predict(x, budget=requested)[1], expected[served][1]
        )


@pytest.mark.parametrize("format", ["tf_saved_model", "litert"])
def test_a_wrong_budget_gets_a_defined_output(calibrated, tmp_path, format):
    predictor, x, expected = calibrated
    artifact = tmp_path / ("served.tflite" if format == "litert" else "served")
    predictor.export(artifact, format=format)
    outputs = call_without_the_package(artifact, x, [b for b, _ in WRONG], tmp_path)
    check_served(predictor, expected, WRONG, outputs)
    for requested, _ in WRONG:
        with pytest.raises(ValueError, match="budget"):
            predictor.predict(x, budget=requested)


@pytest.mark.parametrize("jit_compile", [None, False])
def test_a_batch_1_saved_model_matches(calibrated, tmp_path, jit_compile):
    import tensorflow as tf

    predictor, x, expected = calibrated
    predictor.export(tmp_path / "served_1", batch_size=1, jit_compile=jit_compile)
    served = tf.saved_model.load(str(tmp_path / "served_1"))
    for requested, budget in [(0.55, 0.55), *VALID]:
        outs = [
            served.serve(tf.constant(x[i : i + 1]), tf.constant(requested)) for i in range(len(x))
        ]
        assert {o["budget"].numpy() for o in outs} == {np.float32(budget)}
        probs, exits = expected[budget]
        np.testing.assert_array_equal([int(o["exit"][0]) for o in outs], exits)
        got = np.concatenate([o["probabilities"].numpy() for o in outs])
        np.testing.assert_allclose(got, probs, atol=1e-5)


def test_thresholds_set_by_hand_serve_every_budget(calibrated, tmp_path):
    import tensorflow as tf

    predictor, x, _ = calibrated
    by_hand = EarlyExitPredictor(predictor.model)
    confidence = by_hand.exit_probabilities(x).max(axis=2)
    by_hand.thresholds = np.median(confidence[:-1], axis=1)  # images leave at every exit
    probs, exits = by_hand.predict(x)
    assert set(exits) == {1, 2, 3}
    by_hand.export(tmp_path / "by_hand")
    served = tf.saved_model.load(str(tmp_path / "by_hand"))
    for b in (0.3, 1.0):
        out = served.serve(tf.constant(x), tf.constant(b))
        assert np.isnan(out["budget"].numpy())  # no calibrated budget to report
        np.testing.assert_array_equal(out["exit"].numpy(), exits)
        np.testing.assert_allclose(out["probabilities"].numpy(), probs, atol=1e-5)


def test_export_refuses_an_unknown_format(calibrated, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format 'onnx'"):
        calibrated[0].export(tmp_path / "m.onnx", format="onnx")


def test_export_refuses_xla_where_it_cannot_compile(calibrated, tmp_path):
    predictor = calibrated[0]
    with pytest.raises(ValueError, match="jit_compile=True needs batch_size=1"):
        predictor.export(tmp_path / "any_batch", jit_compile=True)
    with pytest.raises(ValueError, match="format='tf_saved_model' only"):
        predictor.export(tmp_path / "m.tflite", format="litert", jit_compile=True)
