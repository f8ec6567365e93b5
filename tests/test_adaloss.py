import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import JAX_ENV, dense_anytime, small_family_models, toy_data

from keras_anytime.callbacks import AdaLoss


def numpy_adaloss(step_losses, momentum, gamma, final_extra, update_every, eps=1e-8):
    """The rule of the developers' guide, written independently in numpy."""
    k = len(step_losses[0])
    avg, w, history = None, np.ones(k), []
    for t, loss in enumerate(step_losses, start=1):
        loss = np.asarray(loss, dtype=np.float64)
        avg = loss.copy() if avg is None else momentum * avg + (1 - momentum) * loss
        if t % update_every == 0:
            v = 1.0 / (avg + eps)
            v /= v.max()
            v[-1] += final_extra
            v /= v.max()
            w = (1 - gamma) * v + gamma
        history.append((avg.copy(), w.copy()))
    return history


def test_rule_matches_numpy_over_steps():
    model = dense_anytime()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    ada = AdaLoss(momentum=0.5, gamma=0.1, final_extra=0.5, update_every=2)
    model.set_loss_balancer(ada)
    x, y = toy_data()
    step_losses, states = [], []
    for _ in range(7):
        logs = model.train_on_batch(x, y, return_dict=True)
        step_losses.append([logs[f"exit_{k}_loss"] for k in (1, 2, 3)])
        state = model.exit_weighting
        states.append((np.array(state.avg_losses), np.array(state.weights_var)))
    expected = numpy_adaloss(step_losses, 0.5, 0.1, 0.5, 2)
    for (avg, w), (avg_np, w_np) in zip(states, expected):
        np.testing.assert_allclose(avg, avg_np, rtol=1e-5)
        np.testing.assert_allclose(w, w_np, rtol=1e-5)
    assert float(model.exit_weighting.steps) == 7
    assert not np.allclose(states[-1][1], 1.0)  # the weights did move


def test_logged_loss_is_weighted_sum_with_current_weights():
    model = dense_anytime()
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    model.set_loss_balancer(AdaLoss(update_every=1))
    x, y = toy_data()
    for _ in range(3):
        w_before = np.array(model.exit_weighting.weights_var)
        logs = model.train_on_batch(x, y, return_dict=True)
        exit_losses = np.array([logs[f"exit_{k}_loss"] for k in (1, 2, 3)])
        assert logs["loss"] == pytest.approx(float(w_before @ exit_losses), rel=1e-5)
        # and the per-exit losses are the true (unweighted) cross-entropies
        probs = model.predict(x, verbose=0)
        ce = [-np.mean(np.log(p[np.arange(len(y)), y])) for p in probs]
        np.testing.assert_allclose(exit_losses, ce, rtol=1e-4)
    assert not np.allclose(np.array(model.exit_weighting.weights_var), 1.0)


def test_weights_reach_the_gradient():
    model = dense_anytime()
    model.compile(
        keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", loss_weights=[0, 0, 1]
    )
    x, y = toy_data()
    before = {k: np.array(model.get_layer(f"exit_{k}").kernel) for k in (1, 2, 3)}
    model.train_on_batch(x, y)
    after = {k: np.array(model.get_layer(f"exit_{k}").kernel) for k in (1, 2, 3)}
    np.testing.assert_array_equal(before[1], after[1])  # weight 0: no gradient at all
    np.testing.assert_array_equal(before[2], after[2])
    assert not np.allclose(before[3], after[3])


def test_fit_with_callback_logs_weights_per_epoch(tmp_path):
    model = dense_anytime()
    model.compile(
        keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    x, y = toy_data(256)
    csv = tmp_path / "history.csv"
    history = model.fit(
        x,
        y,
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[keras.callbacks.CSVLogger(str(csv)), AdaLoss(update_every=4)],
    )
    for k in (1, 2, 3):
        assert len(history.history[f"adaloss_w_{k}"]) == 2
        assert f"exit_{k}_accuracy" in history.history
    header = csv.read_text().splitlines()[0].split(",")
    assert {"adaloss_w_1", "adaloss_w_2", "adaloss_w_3"} <= set(header)
    w = [history.history[f"adaloss_w_{k}"][-1] for k in (1, 2, 3)]
    np.testing.assert_allclose(w, np.array(model.exit_weighting.weights_var), rtol=1e-6)
    assert max(w) == pytest.approx(1.0) and min(w) < 1.0
    assert float(model.exit_weighting.steps) == 16
    # after fit the balancer is gone: a plain fit keeps the weights fixed
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    np.testing.assert_allclose(np.array(model.exit_weighting.weights_var), w, rtol=1e-6)


def test_nan_loss_leaves_averages_and_warns_once():
    model = dense_anytime()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = toy_data(64)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[AdaLoss(update_every=1)])
    avg = np.array(model.exit_weighting.avg_losses)
    w = np.array(model.exit_weighting.weights_var)
    bad = x.copy()
    bad[:] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            bad, y, batch_size=32, epochs=2, verbose=0, callbacks=[cb := AdaLoss(update_every=1)]
        )
    ours = [c for c in caught if "AdaLoss" in str(c.message)]
    assert len(ours) == 1 and "NaN or infinite" in str(ours[0].message)
    np.testing.assert_array_equal(np.array(model.exit_weighting.avg_losses), avg)
    np.testing.assert_array_equal(np.array(model.exit_weighting.weights_var), w)
    assert float(model.exit_weighting.nonfinite_steps) == 4
    assert cb._warned


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.state = [np.array(v) for v in self.model.exit_weighting.variables]
            raise RuntimeError("interrupted")


class _Probe(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.state = [np.array(v) for v in self.model.exit_weighting.variables]


def test_backup_and_restore_resumes_adaloss_state(tmp_path):
    x, y = toy_data(128)
    backup = str(tmp_path / "backup")

    def fit(model, *extra):
        model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
        callbacks = [keras.callbacks.BackupAndRestore(backup), AdaLoss(update_every=2), *extra]
        model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=callbacks)

    interrupt = _Interrupt()
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(dense_anytime(seed=0), interrupt)
    probe = _Probe()
    resumed = dense_anytime(seed=5)  # different initial weights: all state comes from the backup
    fit(resumed, probe)
    for saved, restored in zip(interrupt.state, probe.state):
        np.testing.assert_array_equal(saved, restored)
    assert float(interrupt.state[2]) == 8  # 2 epochs x 4 steps
    assert float(resumed.exit_weighting.steps) == 16


def test_keras_round_trip_safe_mode(tmp_path):
    from keras_anytime.applications import AnytimeResNet

    model = AnytimeResNet(20, exit_every=3)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.set_loss_weights([0.2, 0.5, 1.0])
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True by default
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.array(loaded.exit_weighting.weights_var), [0.2, 0.5, 1.0])
    assert loaded.output_names == model.output_names


def test_bad_arguments():
    for kwargs in ({"momentum": 1.0}, {"gamma": -0.1}, {"update_every": 0}, {"final_extra": -1}):
        with pytest.raises(ValueError):
            AdaLoss(**kwargs)
    plain = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    plain.compile("sgd", "sparse_categorical_crossentropy")
    x, y = toy_data(32)
    with pytest.raises(TypeError, match="AnytimeModel"):
        plain.fit(x, y, epochs=1, verbose=0, callbacks=[AdaLoss()])


BACKEND_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import keras, numpy as np
from helpers import dense_anytime, toy_data
from keras_anytime.callbacks import AdaLoss
model = dense_anytime()
model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
x, y = toy_data(128)
model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
          callbacks=[AdaLoss(momentum=0.5, update_every=3)])
s = model.exit_weighting
print(json.dumps({"backend": keras.config.backend(), "w": np.array(s.weights_var).tolist(),
                  "avg": np.array(s.avg_losses).tolist(), "steps": float(s.steps)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_same_weights_on_jax_torch_and_tensorflow(backend):
    tests_dir = str(Path(__file__).parent)
    results = {}
    for name in ("tensorflow", backend):
        env = {**os.environ, **(JAX_ENV if name == "jax" else {"KERAS_BACKEND": name})}
        out = subprocess.run(
            [sys.executable, "-c", BACKEND_SCRIPT, tests_dir],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert results[backend]["backend"] == backend
    assert results["tensorflow"]["steps"] == results[backend]["steps"] == 12
    np.testing.assert_allclose(results[backend]["w"], results["tensorflow"]["w"], rtol=1e-4)
    np.testing.assert_allclose(results[backend]["avg"], results["tensorflow"]["avg"], rtol=1e-4)
    assert not np.allclose(results[backend]["w"], 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["resnet", "densenet", "msdnet", "eann"])
def test_import_registers_every_family_for_load_model(tmp_path, family):
    """A fresh process with only `import keras, keras_anytime` restores a saved model of
    every family (MSDNet and EANN use the package's own RunAfter layer) with equal outputs."""
    from keras_anytime.applications import AnytimeResNet

    model = AnytimeResNet(8) if family == "resnet" else small_family_models()[family]
    path, images = tmp_path / "m.keras", tmp_path / "x.npy"
    model.save(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.save(images, x)
    script = (
        "import sys, keras, keras_anytime, numpy as np; "
        f"m = keras.saving.load_model({str(path)!r}); print(type(m).__name__); "
        f"np.savez({str(tmp_path / 'y.npz')!r}, *m.predict(np.load({str(images)!r}), verbose=0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AnytimeModel" in out.stdout
    with np.load(tmp_path / "y.npz") as loaded:
        reloaded = [loaded[f"arr_{i}"] for i in range(len(loaded.files))]
    expected = model.predict(x, verbose=0)
    assert len(reloaded) == len(expected) == model.num_exits
    for a, b in zip(expected, reloaded):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_no_retrace_across_fits_with_the_same_settings():
    model = dense_anytime()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = toy_data(64)
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[AdaLoss(update_every=1)])
    step_fn = model.train_function
    w = np.array(model.exit_weighting.weights_var)
    model.fit(x, y, batch_size=32, verbose=0)  # AdaLoss off: same step, weights frozen
    np.testing.assert_array_equal(np.array(model.exit_weighting.weights_var), w)
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[AdaLoss(update_every=1)])
    assert model.train_function is step_fn
    assert not np.array_equal(np.array(model.exit_weighting.weights_var), w)
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[AdaLoss(update_every=1, gamma=0.5)])
    assert model.train_function is not step_fn  # other constants: rebuilt once


def test_loss_list_must_match_exits():
    model = dense_anytime()
    with pytest.raises(ValueError, match="`loss` has 2 entries but the model has 3 exits"):
        model.compile("sgd", ["sparse_categorical_crossentropy"] * 2)
    with pytest.raises(ValueError, match="not a dict"):
        model.compile("sgd", {"exit_1": "mse"})
    with pytest.raises(ValueError, match="loss_weights must be 3 finite non-negative"):
        model.compile("sgd", "sparse_categorical_crossentropy", loss_weights=[1, -1, 1])


def test_the_step_counter_still_counts_past_two_to_the_24():
    """A float32 counter stops at 2**24 (2**24 + 1 rounds back), so `steps % update_every`
    would never again reach 0 and the weights would freeze."""
    model = dense_anytime()
    state = model.exit_weighting
    state.steps.assign(2**24)
    state.active.assign(1.0)
    balancer = AdaLoss(update_every=100)
    losses = keras.ops.convert_to_tensor(np.array([2.0, 1.0, 0.5], "float32"))
    for _ in range(84):  # 2**24 + 84 is a multiple of 100
        balancer.update(state, losses)
    assert int(keras.ops.convert_to_numpy(state.steps)) == 2**24 + 84
    assert not np.allclose(np.array(state.weights_var), 1.0)  # the update was due and ran
