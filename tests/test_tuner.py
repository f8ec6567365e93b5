import keras_tuner
import numpy as np
import pytest

from keras_anytime.tuner import AnytimeHyperModel, ExitSummary


@pytest.mark.slow
def test_two_trial_random_search_on_the_anytime_objective(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 64)
    hypermodel = AnytimeHyperModel(families=("resnet", "densenet"))
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        objective=hypermodel.objective("anytime"),
        max_trials=2,
        seed=3,
        directory=str(tmp_path),
        project_name="anytime",
    )
    tuner.search(x, y, validation_data=(x[:32], y[:32]), epochs=1, batch_size=32, verbose=0)
    trials = tuner.oracle.get_best_trials(num_trials=2)
    assert len(trials) == 2
    for trial in trials:
        assert trial.status == "COMPLETED"
        score = trial.metrics.get_last_value("val_mean_exit_accuracy")
        assert 0.0 <= score <= 1.0 and trial.score == score
        assert 0.0 <= trial.hyperparameters.get("gamma") <= 0.2
    best = tuner.get_best_models(1)[0]
    assert best.output_names[0] == "exit_1"


def test_exit_summary_and_objectives():
    logs = {"val_exit_1_accuracy": 0.2, "val_exit_2_accuracy": 0.4, "val_exit_10_accuracy": 0.9}
    ExitSummary().on_epoch_end(0, logs)
    assert logs["val_last_exit_accuracy"] == 0.9
    assert logs["val_mean_exit_accuracy"] == pytest.approx(0.5)
    single = {"val_accuracy": 0.3}
    ExitSummary().on_epoch_end(0, single)
    assert single["val_mean_exit_accuracy"] == single["val_last_exit_accuracy"] == 0.3
    assert AnytimeHyperModel.objective("last").name == "val_last_exit_accuracy"
    with pytest.raises(ValueError, match="Unknown objective"):
        AnytimeHyperModel.objective("auc")
    with pytest.raises(ValueError, match="families"):
        AnytimeHyperModel(families=("vgg",))
