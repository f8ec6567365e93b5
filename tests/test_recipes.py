"""The training recipes: default peaks, schedules and errors."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_anytime import recipes


@pytest.mark.parametrize("recipe,peak", [("short", 1.6), ("paper", 0.1), ("step", 0.1)])
def test_default_peak_scales_with_the_batch(recipe, peak):
    for batch in (128, 256):
        schedule = recipes.learning_rate(recipe, epochs=20, steps_per_epoch=100, batch_size=batch)
        lrs = np.array([float(schedule(s)) for s in range(0, 2000, 50)])  # peak: step 100
        assert lrs.max() == pytest.approx(peak * batch / 128, rel=1e-5)


def test_short_warms_up_for_one_epoch_then_decays_to_zero():
    schedule = recipes.learning_rate("short", epochs=20, steps_per_epoch=100, lr=0.4)
    # every 10 steps through the warm-up (it ends at step 100 = index 10), then every 100
    steps = np.concatenate([np.arange(0, 100, 10), np.arange(100, 2001, 100)])
    lrs = np.array([float(schedule(s)) for s in steps])
    assert lrs[0] == 0.0 and lrs[10] == pytest.approx(0.4)
    assert np.all(np.diff(lrs[:11]) > 0) and np.all(np.diff(lrs[10:]) <= 1e-9)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-6)


def test_step_divides_by_ten_at_half_and_three_quarters():
    schedule = recipes.learning_rate("step", epochs=4, steps_per_epoch=100)
    assert [float(schedule(s)) for s in (0, 199, 200, 299, 300, 399)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_paper_is_the_authors_cifar_schedule_by_epoch():
    # 0.1, then 0.01 from epoch 140, 0.001 from 210 and 0.0002 from 250 (0-based), each
    # from the first step of that epoch (the optimizer's iteration count before the step)
    steps = 351
    schedule = recipes.learning_rate("paper", epochs=300, steps_per_epoch=steps)
    first = {epoch: float(schedule(epoch * steps)) for epoch in (0, 139, 140, 209, 210, 249, 250)}
    assert first == pytest.approx(
        {0: 0.1, 139: 0.1, 140: 0.01, 209: 0.01, 210: 0.001, 249: 0.001, 250: 0.0002}
    )
    assert float(schedule(140 * steps - 1)) == pytest.approx(0.1)
    assert float(schedule(300 * steps - 1)) == pytest.approx(0.0002)


def test_paper_keeps_its_fractions_over_another_length():
    schedule = recipes.learning_rate("paper", epochs=30, steps_per_epoch=10)
    assert [float(schedule(e * 10)) for e in (13, 14, 20, 21, 24, 25)] == pytest.approx(
        [0.1, 0.01, 0.01, 0.001, 0.001, 0.0002]
    )


def test_optimizer_is_sgd_on_that_schedule():
    opt = recipes.optimizer("short", epochs=2, steps_per_epoch=10)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == 0.9
    for recipe in ("paper", "step"):
        paper = recipes.optimizer(recipe, epochs=2, steps_per_epoch=10)
        assert not paper.nesterov and paper.momentum == 0.9


def test_bad_recipe_and_lengths():
    with pytest.raises(ValueError, match="Unknown recipe 'slow'.*paper"):
        recipes.optimizer("slow", 1, 1)
    with pytest.raises(ValueError, match="epochs and steps_per_epoch must be >= 1"):
        recipes.optimizer("short", 0, 10)


def test_weight_decay_shrinks_kernels_but_not_batchnorm_parameters():
    inp = keras.Input((4, 4, 2))
    x = keras.layers.Conv2D(3, 1, use_bias=False, name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = keras.Model(inp, x)
    model.get_layer("bn").gamma.assign(np.full(3, 2.0))
    opt = recipes.optimizer("paper", 1, 1, lr=0.5, weight_decay=0.1)
    zero = [keras.ops.zeros(v.shape) for v in model.trainable_variables]
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    opt.apply_gradients(zip(zero, model.trainable_variables))
    kernel, gamma, beta = (keras.ops.convert_to_numpy(v) for v in model.trainable_variables)
    np.testing.assert_allclose(kernel, before[0] * (1 - 0.5 * 0.1), rtol=1e-6)
    np.testing.assert_array_equal(gamma, before[1])
    np.testing.assert_array_equal(beta, before[2])
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        recipes.optimizer("paper", 1, 1, weight_decay=-1.0)


def test_label_smoothing_loss_matches_keras_on_one_hot_targets():
    from keras_anytime.losses import SparseCategoricalCrossentropy

    y = np.array([2, 0, 1])
    p = np.random.default_rng(0).dirichlet(np.ones(4), 3).astype("float32")
    for s in (0.0, 0.1):
        ours = float(SparseCategoricalCrossentropy(s)(y, p))
        theirs = float(keras.losses.CategoricalCrossentropy(label_smoothing=s)(np.eye(4)[y], p))
        assert ours == pytest.approx(theirs, rel=1e-6)
    restored = keras.losses.deserialize(keras.losses.serialize(SparseCategoricalCrossentropy(0.1)))
    assert restored.label_smoothing == 0.1
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        SparseCategoricalCrossentropy(1.0)


def _l2_total(model) -> float:
    return float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))


def test_set_kernel_l2_replaces_the_builders_factor_everywhere(tmp_path):
    from keras_anytime.applications import AnytimeResNet, base

    model = AnytimeResNet(8)
    kernels = [v for v in model.trainable_weights if v.regularizer is not None]
    squares = sum(float(np.sum(keras.ops.convert_to_numpy(v) ** 2)) for v in kernels)
    assert _l2_total(model) == pytest.approx(base.L2 * squares, rel=1e-5)

    assert recipes.set_kernel_l2(model, 3e-4) == len(kernels)
    assert _l2_total(model) == pytest.approx(3e-4 * squares, rel=1e-5)
    model.save(tmp_path / "m.keras")  # the configs carry the new factor
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert _l2_total(reloaded) == pytest.approx(3e-4 * squares, rel=1e-5)

    assert recipes.set_kernel_l2(model, 0.0) == len(kernels)
    assert model.losses == [] and all(v.regularizer is None for v in model.trainable_weights)
    assert recipes.set_kernel_l2(model, 1e-4) == 0  # no kernel regulariser left to replace
    with pytest.raises(ValueError, match="l2 must be >= 0"):
        recipes.set_kernel_l2(model, -1e-4)


def test_train_takes_the_recipes_kernel_l2_or_l2():
    from keras_anytime.training import TrainConfig, run

    config = TrainConfig("unused", model={"depth": 8}, recipe="fast")
    builders = run._compiled_model(config, 10, jit_compile=False)
    none = run._compiled_model(dataclasses.replace(config, l2=0.0), 10, jit_compile=False)
    assert recipes.KERNEL_L2["fast"] is None and _l2_total(builders) > 0
    assert none.losses == []
