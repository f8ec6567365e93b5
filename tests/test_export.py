"""Exported early-exit predictors: a SavedModel that runs with TensorFlow alone and a
LiteRT model, each giving the Python predictor's exits and probabilities."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_anytime.applications import AnytimeResNet
from keras_anytime.inference import EarlyExitPredictor

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow", reason="export traces TensorFlow graphs"
)


@pytest.fixture(scope="module")
def calibrated():
    keras.utils.set_random_seed(0)
    model = AnytimeResNet(depth=8, width=4)  # 3 exits
    x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3)).astype("float32")
    predictor = EarlyExitPredictor(model)
    confidence = predictor.exit_probabilities(x).max(axis=2)
    # thresholds at the exits' median confidences: images leave at every exit
    predictor.thresholds = np.median(confidence[:-1], axis=1)
    probs, exits = predictor.predict(x)
    assert set(exits) == {1, 2, 3}
    return predictor, x, probs, exits


LOAD_WITHOUT_THE_PACKAGE = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
out = served.serve(tf.constant(np.load(sys.argv[2])))
np.save(sys.argv[3], np.concatenate([out["probabilities"].numpy(),
                                     out["exit"].numpy()[:, None].astype("float32")], axis=1))
print(json.dumps({"imported": sorted(m for m in sys.modules if m.startswith("keras"))}))
"""


def test_saved_model_runs_without_the_package_and_matches(calibrated, tmp_path):
    predictor, x, probs, exits = calibrated
    predictor.export(tmp_path / "served")
    np.save(tmp_path / "x.npy", x)
    run = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_THE_PACKAGE, str(tmp_path / "served"),
         str(tmp_path / "x.npy"), str(tmp_path / "out.npy")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    imported = json.loads(run.stdout.strip().splitlines()[-1])["imported"]
    assert not [m for m in imported if m.startswith("keras_anytime")]
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(out[:, -1].astype(int), exits)
    np.testing.assert_allclose(out[:, :-1], probs, atol=1e-5)


def test_litert_model_matches_at_batch_1(calibrated, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    predictor, x, probs, exits = calibrated
    predictor.export(tmp_path / "served.tflite", format="litert")
    serve = Interpreter(str(tmp_path / "served.tflite")).get_signature_runner("serve")
    outs = [serve(images=x[i : i + 1]) for i in range(len(x))]
    np.testing.assert_array_equal([int(o["exit"][0]) for o in outs], exits)
    np.testing.assert_allclose(np.concatenate([o["probabilities"] for o in outs]), probs, atol=1e-5)


def test_a_batch_1_saved_model_matches(calibrated, tmp_path):
    import tensorflow as tf

    predictor, x, probs, exits = calibrated
    predictor.export(tmp_path / "served_1", batch_size=1)
    served = tf.saved_model.load(str(tmp_path / "served_1"))
    outs = [served.serve(tf.constant(x[i : i + 1])) for i in range(len(x))]
    np.testing.assert_array_equal([int(o["exit"][0]) for o in outs], exits)
    got = np.concatenate([o["probabilities"].numpy() for o in outs])
    np.testing.assert_allclose(got, probs, atol=1e-5)


def test_export_refuses_an_unknown_format(calibrated, tmp_path):
    with pytest.raises(ValueError, match="Unknown export format 'onnx'"):
        calibrated[0].export(tmp_path / "m.onnx", format="onnx")


def test_export_refuses_xla_where_it_cannot_compile(calibrated, tmp_path):
    predictor = calibrated[0]
    with pytest.raises(ValueError, match="jit_compile=True needs batch_size=1"):
        predictor.export(tmp_path / "any_batch", jit_compile=True)
    with pytest.raises(ValueError, match="format='tf_saved_model' only"):
        predictor.export(tmp_path / "m.tflite", format="litert", jit_compile=True)


def test_a_batch_1_saved_model_without_xla_matches(calibrated, tmp_path):
    import tensorflow as tf

    predictor, x, probs, exits = calibrated
    predictor.export(tmp_path / "plain_1", batch_size=1, jit_compile=False)
    served = tf.saved_model.load(str(tmp_path / "plain_1"))
    outs = [served.serve(tf.constant(x[i : i + 1])) for i in range(len(x))]
    np.testing.assert_array_equal([int(o["exit"][0]) for o in outs], exits)
