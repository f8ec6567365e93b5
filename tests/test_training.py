"""Training from Python: `TrainConfig` and `train`, and run.json read back."""

import json

import pytest
from conftest import REPO

from keras_anytime import registry
from keras_anytime.training import TrainConfig, train


@pytest.mark.slow
def test_train_from_python_and_run_json_round_trips(cifar_dir, tmp_path):
    config = TrainConfig(
        str(tmp_path / "run"),
        model={"depth": 8},
        epochs=2,
        steps_per_epoch=3,
        batch_size=32,
        update_every=2,
        data_dir=str(cifar_dir),
        verbose=0,
    )
    result = train(config)
    assert [row["exit"] for row in result.exits] == [1, 2, 3]
    assert len(result.history["loss"]) == 2 and "adaloss_w_3" in result.history
    assert result.model_path.is_file() and result.best_weights_path.is_file()
    assert TrainConfig.from_run_json(result.out) == config
    record = json.loads((result.out / "run.json").read_text())
    assert record["argv"] is None and record["config"]["model"] == {"depth": 8}


def test_a_0_1_run_json_reads_into_a_config():
    config = TrainConfig.from_run_json(REPO / "tests" / "data" / "run_0_1" / "run.json")
    assert config.family == "resnet" and config.model == {"depth": 8, "exit_every": 1}
    assert (config.recipe, config.epochs, config.precision) == ("paper", 3, "float32")
    assert (config.weighting, config.update_every, config.batch_size) == ("adaloss", 2, 32)
    assert config.to_dict() == TrainConfig.from_dict(config.to_dict()).to_dict()


def test_model_arguments_take_the_family_defaults():
    assert TrainConfig("x").model_kwargs == {"depth": 20, "exit_every": 1}
    msdnet = TrainConfig("x", family="msdnet", model={"n_blocks": 3}).model_kwargs
    assert msdnet["n_blocks"] == 3 and msdnet["step"] == 2  # cifar_anytime, overridden


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"family": "eann"}, "train cannot build family 'eann'"),
        ({"family": "vgg"}, "Unknown model family 'vgg'"),
        ({"model": {"growth_rate": 12}}, r"takes no model argument \['growth_rate'\]"),
        ({"weighting": "softmax"}, "Unknown weighting 'softmax'"),
        ({"strategy": "tpu"}, "Unknown strategy 'tpu'"),
        ({"epochs": 0}, "epochs and batch_size must be >= 1"),
    ],
)
def test_a_bad_config_is_refused_with_what_to_use(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig("x", **kwargs)


def test_an_unknown_named_configuration_is_refused():
    with pytest.raises(ValueError, match="Unknown MSDNet configuration 'tiny'.*cifar_anytime"):
        TrainConfig("x", family="msdnet", model={"config": "tiny"})


def test_the_family_table_says_what_each_family_takes():
    assert registry.family("AnytimeResNet") is registry.FAMILIES["resnet"]
    trainable = [name for name, f in registry.FAMILIES.items() if f.trainable]
    assert trainable == ["resnet", "densenet", "msdnet"]
    assert registry.FAMILIES["densenet"].defaults == {
        "depth": 100,
        "growth_rate": None,
        "exit_every": 1,
    }
