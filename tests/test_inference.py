import json

import keras
import numpy as np
import pytest
from helpers import dense_anytime, toy_data

from keras_anytime.applications import EANN, AnytimeDenseNet, AnytimeResNet, MSDNet
from keras_anytime.flops import exit_flops
from keras_anytime.inference import (
    SIDECAR_SUFFIX,
    EarlyExitPredictor,
    assign_exits,
    exit_proportions,
    thresholds_for,
)

SMALL = {
    "resnet": lambda: AnytimeResNet(14, exit_every=2, input_shape=(16, 16, 3)),
    "msdnet": lambda: MSDNet(
        3, 1, 1, n_channels=4, growth_rate=2, gr_factor="1-2-4", bn_factor="1-2-4"
    ),
    "densenet": lambda: AnytimeDenseNet(10, growth_rate=4, input_shape=(16, 16, 3)),
    "eann": lambda: EANN(num_members=2, exit_every=3, width=4, input_shape=(16, 16, 3)),
}


def images(model, n: int, seed: int = 0) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype("uint8")


def recording(fn, sizes: list):
    def call(inputs):
        sizes.append(len(inputs[0]))
        return fn(inputs)

    return call


@pytest.mark.parametrize("family", sorted(SMALL))
def test_exited_samples_match_full_model(family):
    keras.utils.set_random_seed(0)
    model = SMALL[family]()
    x = images(model, 24)
    full = model.predict(x.astype("float32"), verbose=0)
    predictor = EarlyExitPredictor(model)
    assert predictor.exit_macs.tolist() == exit_flops(model, include_earlier_exits=True, lazy=True)

    confidence = np.stack([p.max(axis=1) for p in full])
    predictor.thresholds = np.median(confidence, axis=1)[:-1]  # every exit takes some
    seen = [[] for _ in predictor._stages]  # batch sizes each stage ran on
    for stage, sizes in zip(predictor._stages, seen):
        stage.fn = recording(stage.fn, sizes)
    probs, exits = predictor.predict(x, batch_size=10)

    expected = assign_exits(confidence, predictor.thresholds)
    np.testing.assert_array_equal(exits, expected)
    assert set(exits) == set(range(1, predictor.num_exits + 1))
    for i, k in enumerate(exits):
        np.testing.assert_allclose(probs[i], full[k - 1][i], rtol=1e-5, atol=1e-6)
    # Stage k runs only on the images that did not leave at exits 1..k-1.
    assert [sum(s) for s in seen] == [int(np.sum(exits >= k)) for k in range(1, len(seen) + 1)]
    for k in (1, predictor.num_exits):
        np.testing.assert_allclose(
            predictor.predict_at(x, k, batch_size=7), full[k - 1], rtol=1e-5, atol=1e-6
        )


def test_exit_read_by_a_later_stage():
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    first = keras.layers.Dense(4, activation="softmax", name="exit_1")(h)
    h = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([h, first]))
    second = keras.layers.Dense(4, activation="softmax", name="exit_2")(h)
    model = keras.Model(inp, [first, second])
    x, _ = toy_data(40)
    full = model.predict(x, verbose=0)
    predictor = EarlyExitPredictor(model)
    predictor.thresholds = [np.median(full[0].max(axis=1))]
    probs, exits = predictor.predict(x, batch_size=16)
    assert set(exits) == {1, 2}
    np.testing.assert_allclose(probs, np.where((exits == 1)[:, None], *full), atol=1e-6)


def test_a_later_stage_reads_the_exit_as_logits_with_from_logits():
    """With from_logits=True the stages report softmaxed probabilities, but a later stage
    that reads an exit gets that exit's logits, as the model computes them."""
    inp = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh")(inp)
    first = keras.layers.Dense(4, name="exit_1")(h)  # logits
    h = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([h, first]))
    second = keras.layers.Dense(4, name="exit_2")(h)
    model = keras.Model(inp, [first, second])
    x, y = toy_data(40)
    full = [keras.ops.convert_to_numpy(keras.ops.softmax(p)) for p in model.predict(x, verbose=0)]
    predictor = EarlyExitPredictor(model, from_logits=True)
    np.testing.assert_allclose(predictor.predict_at(x, 2), full[1], rtol=1e-5, atol=1e-6)
    report = predictor.calibrate(x, y, 0.8)
    assert all(0.0 <= t <= 1.0 for t in report["thresholds"])


def test_calibrate_refuses_logits_without_from_logits(tmp_path):
    model = AnytimeResNet(8, exit_every=2, input_shape=(16, 16, 3), classifier_activation=None)
    x = images(model, 8)
    with pytest.raises(ValueError, match="not class probabilities.*from_logits=True"):
        EarlyExitPredictor(model).calibrate(x, np.zeros(8, "int64"), 0.8)
    predictor = EarlyExitPredictor(model, from_logits=True)
    predictor.calibrate(x, np.zeros(8, "int64"), 0.8)
    predictor.save(tmp_path / "m.keras")  # what calibrate stores, load accepts
    np.testing.assert_array_equal(
        EarlyExitPredictor.load(tmp_path / "m.keras").thresholds, predictor.thresholds
    )


def test_macs_accounting():
    model = dense_anytime(num_exits=3)
    predictor = EarlyExitPredictor(model)
    cumulative = exit_flops(model, include_earlier_exits=True)
    assert predictor.exit_macs.tolist() == cumulative == [80, 176, 272]
    assert predictor.average_macs(np.array([1, 1, 3, 2])) == (2 * 80 + 272 + 176) / 4
    x, _ = toy_data(50)
    predictor.thresholds = [0.5, 0.6]
    _, exits = predictor.predict(x)
    assert predictor.average_macs(exits) == np.mean(np.array(cumulative)[exits - 1])


def test_thresholds_follow_the_msdnet_rule():
    q = exit_proportions(0.5, 3)
    np.testing.assert_allclose(q, np.array([4, 2, 1]) / 7)
    confidence = np.random.default_rng(0).random((3, 700))
    exits = assign_exits(confidence, thresholds_for(confidence, q))
    assert np.bincount(exits, minlength=4)[1:].tolist() == [400, 200, 100]


def test_thresholds_lie_halfway_to_the_next_confidence():
    """Each threshold lies strictly between the confidence of the last image that leaves
    and the next lower one still in, so that the same images leave as at the first."""
    confidence = np.random.default_rng(0).random((3, 700)).astype("float32")
    q = exit_proportions(0.5, 3)
    thresholds = thresholds_for(confidence, q)
    exits = assign_exits(confidence, thresholds)
    assert np.bincount(exits, minlength=4)[1:].tolist() == [400, 200, 100]
    for k in (1, 2):
        reached = confidence[k - 1, exits >= k]
        left, stayed = reached[exits[exits >= k] == k], reached[exits[exits >= k] > k]
        assert stayed.max() < thresholds[k - 1] < left.min()
        assert thresholds[k - 1] == np.float32(thresholds[k - 1])  # exported graphs use float32
    # adjacent float32 confidences leave no float32 between them: the higher one's
    high = np.float32(0.5)
    tied = np.array([[high, np.nextafter(high, np.float32(0))], [0.1, 0.1]], "float32")
    assert thresholds_for(tied, np.array([0.5, 0.5]))[0] == high


@pytest.mark.parametrize("budget", [0.3, 0.5, 0.75, 1.0])
def test_calibration_meets_budget_on_held_out_data(budget):
    model = dense_anytime(num_exits=4)
    x, y = toy_data(4000)
    predictor = EarlyExitPredictor(model)
    report = predictor.calibrate(x[:2000], y[:2000], budget)
    assert report["macs_fraction"] <= budget
    assert report["macs_fraction"] == pytest.approx(budget, rel=0.01)
    assert predictor.budget == budget and report["thresholds"] == predictor.thresholds.tolist()
    _, exits = predictor.predict(x[2000:])
    held_out = predictor.average_macs(exits) / predictor.exit_macs[-1]
    assert held_out == pytest.approx(budget, rel=0.05)


@pytest.mark.slow
def test_save_and_load(tmp_path):
    model = SMALL["msdnet"]()
    x = images(model, 16)
    predictor = EarlyExitPredictor(model)
    predictor.calibrate(x, np.zeros(len(x), "int64"), 0.6)
    path = str(tmp_path / "msdnet.keras")
    predictor.save(path)
    sidecar = json.loads(open(path + SIDECAR_SUFFIX).read())
    assert sidecar["thresholds"] == predictor.thresholds.tolist()
    assert sidecar["exit_macs"] == predictor.exit_macs.tolist() and sidecar["budget"] == 0.6

    loaded = EarlyExitPredictor.load(path)
    np.testing.assert_array_equal(loaded.thresholds, predictor.thresholds)
    np.testing.assert_array_equal(loaded.exit_macs, predictor.exit_macs)
    assert loaded.budget == 0.6
    for a, b in zip(loaded.predict(x), predictor.predict(x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    sidecar["exit_macs"][0] += 1
    (tmp_path / ("msdnet.keras" + SIDECAR_SUFFIX)).write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match="do not belong together"):
        EarlyExitPredictor.load(path)


def test_save_and_load_keep_the_budget_table(tmp_path):
    model = dense_anytime(num_exits=3)
    x, y = toy_data(200)
    predictor = EarlyExitPredictor(model)
    predictor.calibrate(x, y, [0.6, 0.4, 0.9])
    path = str(tmp_path / "tiny.keras")
    predictor.save(path)
    loaded = EarlyExitPredictor.load(path)
    assert loaded.budget_table == predictor.budget_table
    assert [e["budget"] for e in loaded.budget_table] == [0.4, 0.6, 0.9]
    for b in (0.4, 0.7, 1.0):
        np.testing.assert_array_equal(
            loaded.predict(x, budget=b)[1], predictor.predict(x, budget=b)[1]
        )


def test_a_sidecar_without_a_budget_table_loads(tmp_path):
    """A sidecar as `save` wrote it before it kept a table: its one budget becomes the
    table; thresholds set by hand (budget null) give none."""
    model = dense_anytime(num_exits=3)
    x, y = toy_data(200)
    predictor = EarlyExitPredictor(model)
    predictor.calibrate(x, y, 0.6)
    path = str(tmp_path / "old.keras")
    model.save(path)
    sidecar = {
        "format": "keras_anytime.early_exit",
        "version": 1,
        "num_exits": 3,
        "exit_macs": [80, 176, 272],
        "thresholds": predictor.thresholds.tolist(),
        "from_logits": False,
        "budget": 0.6,
    }
    (tmp_path / ("old.keras" + SIDECAR_SUFFIX)).write_text(json.dumps(sidecar, indent=2))
    loaded = EarlyExitPredictor.load(path)
    assert loaded.budget == 0.6
    assert loaded.budget_table == [
        {
            "budget": 0.6,
            "thresholds": sidecar["thresholds"],
            "average_macs": None,
            "accuracy": None,
        }
    ]
    np.testing.assert_array_equal(loaded.predict(x)[1], predictor.predict(x)[1])
    np.testing.assert_array_equal(loaded.predict(x, budget=0.8)[1], predictor.predict(x)[1])
    with pytest.raises(ValueError, match="below the smallest calibrated budget, 0.6"):
        loaded.predict(x, budget=0.5)

    sidecar.update(budget=None, thresholds=[0.4, 0.7])
    (tmp_path / ("old.keras" + SIDECAR_SUFFIX)).write_text(json.dumps(sidecar, indent=2))
    loaded = EarlyExitPredictor.load(path)
    assert loaded.budget is None and loaded.budget_table == []
    assert loaded.thresholds.tolist() == [0.4, 0.7]


@pytest.mark.parametrize(
    "thresholds,message",
    [
        ([-0.1, 0.5], r"\[0, 1\]"),
        ([0.5, 1.2], r"\[0, 1\]"),
        ([0.5, float("nan")], r"\[0, 1\]"),
        ([0.5], "Expected 2 thresholds"),
        ([0.5, 0.5, 0.5], "Expected 2 thresholds"),
        ("high", "must be 2 numbers"),
    ],
)
def test_bad_thresholds(thresholds, message):
    predictor = EarlyExitPredictor(dense_anytime(num_exits=3))
    with pytest.raises(ValueError, match=message):
        predictor.thresholds = thresholds


@pytest.mark.parametrize(
    "budget,message",
    [
        (0.0, r"\(0, 1\]"),
        (-0.5, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
        (float("nan"), "budget is NaN"),
        (True, "must be a number"),
        ("0.5", "must be a number"),
        (0.2, "below the cost of exit 1.*at least 0.2941"),
        ([], "empty sequence"),
        ([0.5, 0.5], r"\[0.5\] more than once"),
        ([0.5, float("nan")], "budget is NaN"),
        ([0.5, 0.2], "below the cost of exit 1"),
    ],
)
def test_bad_budgets(budget, message):
    predictor = EarlyExitPredictor(dense_anytime(num_exits=3))  # exit 1: 80 of 272 MACs
    x, y = toy_data(20)
    with pytest.raises(ValueError, match=message):
        predictor.calibrate(x, y, budget)


@pytest.mark.slow
def test_several_budgets_make_a_table():
    model = dense_anytime(num_exits=4)
    x, y = toy_data(4000)
    predictor = EarlyExitPredictor(model)
    reports = predictor.calibrate(x[:2000], y[:2000], [0.75, 0.3, 0.5])
    assert [r["budget"] for r in reports] == [0.75, 0.3, 0.5]  # in the order asked
    table = predictor.budget_table
    assert [e["budget"] for e in table] == [0.3, 0.5, 0.75]
    full = predictor.exit_macs[-1]
    for entry in table:
        alone = EarlyExitPredictor(model)
        report = alone.calibrate(x[:2000], y[:2000], entry["budget"])
        assert entry["thresholds"] == report["thresholds"]  # as if calibrated alone
        assert entry["average_macs"] == report["average_macs"] <= entry["budget"] * full
        assert entry["accuracy"] == report["accuracy"]
        # predict at the budget: the entry's thresholds, as the lone predictor predicts
        np.testing.assert_array_equal(
            predictor.predict(x[2000:], budget=entry["budget"])[1], alone.predict(x[2000:])[1]
        )
    # the largest calibrated budget at or below the one asked for
    at = {b: predictor.predict(x[2000:], budget=b)[1] for b in (0.3, 0.5, 0.75)}
    assert len({tuple(e) for e in at.values()}) == 3
    np.testing.assert_array_equal(predictor.predict(x[2000:], budget=0.49)[1], at[0.3])
    np.testing.assert_array_equal(predictor.predict(x[2000:], budget=1.0)[1], at[0.75])
    # without a budget: the largest
    assert predictor.budget == 0.75 and predictor.thresholds.tolist() == table[-1]["thresholds"]
    np.testing.assert_array_equal(predictor.predict(x[2000:])[1], at[0.75])
    # thresholds set by hand replace the table
    predictor.thresholds = [0.5, 0.5, 0.5]
    assert predictor.budget is None and predictor.budget_table == []


@pytest.mark.parametrize(
    "budget,message",
    [
        (0.25, r"below the smallest calibrated budget, 0.3.*at least 0.3.*calibrate at 0.25"),
        (float("nan"), "budget is NaN"),
        (-0.1, r"\(0, 1\]"),
        (1.5, r"\(0, 1\]"),
        ("high", "must be a number"),
    ],
)
def test_predict_refuses_a_wrong_budget(budget, message):
    predictor = EarlyExitPredictor(dense_anytime(num_exits=3))  # exit 1: 80 of 272 MACs
    x, y = toy_data(50)
    predictor.calibrate(x, y, [0.3, 0.6])
    with pytest.raises(ValueError, match=message):
        predictor.predict(x, budget=budget)


def test_predict_at_a_budget_needs_a_table():
    predictor = EarlyExitPredictor(dense_anytime(num_exits=3))
    x, _ = toy_data(20)
    predictor.thresholds = [0.5, 0.5]
    with pytest.raises(ValueError, match="has none.*call calibrate"):
        predictor.predict(x, budget=0.5)


def test_other_errors():
    predictor = EarlyExitPredictor(dense_anytime(num_exits=3))
    x, y = toy_data(20)
    with pytest.raises(ValueError, match="20 images but y_val has 19"):
        predictor.calibrate(x, y[:-1], 0.5)
    with pytest.raises(ValueError, match="exit must be in 1..3"):
        predictor.predict_at(x, 4)
    with pytest.raises(ValueError, match="x must have shape"):
        predictor.predict(x[:, :5])
    inp = keras.Input((6,))
    single = keras.Model(inp, keras.layers.Dense(4, activation="softmax")(inp))
    with pytest.raises(ValueError, match="single output"):
        EarlyExitPredictor(single)


def test_msdnet_stages_defer_the_finer_scales():
    model = SMALL["msdnet"]()
    eager = exit_flops(model, include_earlier_exits=True)
    lazy = EarlyExitPredictor(model).exit_macs.tolist()
    assert lazy[0] < eager[0] and lazy[-1] == eager[-1]
    assert all(a <= b for a, b in zip(lazy, eager))
