"""The keras-anytime command: help, a resumable training run, eval and zoo list."""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from helpers import JAX_ENV

from keras_anytime import cli, training
from keras_anytime.training import provenance


@pytest.mark.parametrize("verb", [["train"], ["eval"], ["zoo", "list"]])
def test_help_has_an_example(verb, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*verb, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "keras-anytime " + verb[0] in out


def _add_preset():
    """The maintainers' zoo/tools/add_preset.py (not part of the installed package), as a module."""
    spec = importlib.util.spec_from_file_location(
        "add_preset", REPO / "zoo" / "tools" / "add_preset.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_cmd(out, data, epochs):
    return [
        sys.executable, "-m", "keras_anytime.cli", "train", "--depth", "8", "--epochs",
        str(epochs), "--steps-per-epoch", "3", "--batch-size", "32", "--update-every", "2",
        "--data-dir", str(data), "--out", str(out), "--verbose", "2",
    ]  # fmt: skip


def _epochs_in(history):
    with open(history) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_train_is_killed_and_resumes_then_eval(cifar_dir, tmp_path, capsys):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        _train_cmd(out, cifar_dir, 3), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    history = out / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None:
        if history.is_file() and _epochs_in(history) == [0]:
            break
        time.sleep(0.2)
    assert first.poll() is None, first.stdout.read().decode()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _epochs_in(history) == [0]
    assert (out / "backup").is_dir()  # the per-epoch checkpoint

    second = subprocess.run(
        _train_cmd(out, cifar_dir, 3), env=env, capture_output=True, text=True, timeout=300
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Epoch 1/3" not in second.stdout and "Epoch 2/3" in second.stdout
    assert _epochs_in(history) == [0, 1, 2]
    with open(history) as f:
        header = next(csv.reader(f))
    assert {"adaloss_w_1", "adaloss_w_3", "exit_3_accuracy", "val_exit_3_accuracy"} <= set(header)
    for name in ("model.keras", "best.weights.h5", "eval.json", "run.json"):
        assert (out / name).is_file(), name
    starts = json.loads((out / "run.json").read_text())["starts"]
    assert [start["epoch"] for start in starts] == [0, 1]  # resumed after the first epoch
    assert {"keras", "backend", "precision", "jit_compile", "hardware"} <= set(starts[1])
    report = json.loads((out / "eval.json").read_text())
    assert [r["exit"] for r in report["exits"]] == [1, 2, 3] and report["split"] == "val"

    # eval in this process (the train runs above went through the command line)
    model, data = str(out / "model.keras"), ["--data-dir", str(cifar_dir)]
    assert cli.main(["eval", model, *data, "--out", str(tmp_path / "eval")]) == 0
    assert "val acc %" in capsys.readouterr().out
    png = tmp_path / "eval" / "anytime_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert cli.main(["eval", model, *data, "--flip", "--out", str(tmp_path / "flip")]) == 0
    assert "val flip acc %" in capsys.readouterr().out
    plain = json.loads((tmp_path / "eval" / "eval.json").read_text())
    with_flip = json.loads((tmp_path / "flip" / "eval.json").read_text())
    assert with_flip["flip"] is True and plain["flip"] is False
    assert [r["macs"] for r in with_flip["exits"]] == [2 * r["macs"] for r in plain["exits"]]


@pytest.mark.slow
def test_train_with_ema_validates_and_ends_on_the_average(cifar_dir, tmp_path):
    out = tmp_path / "ema"
    run = subprocess.run(
        [*_train_cmd(out, cifar_dir, 2), "--ema", "0.5", "--lr", "0.5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["config"]["ema"] == 0.5
    with open(out / "history.csv") as f:
        last = list(csv.DictReader(f))[-1]
    # the last epoch validated the averaged weights, and the saved model holds them
    report = json.loads((out / "eval.json").read_text())
    for row in report["exits"]:  # the same predictions on the same 5,000 images
        validated = float(last[f"val_exit_{row['exit']}_accuracy"])
        assert validated == pytest.approx(row["accuracy"], abs=1e-6)
    # exit 1's loss: the deeper exits' are past where eval's clipped probabilities agree, and
    # how many probabilities reach the clip varies with the trained weights
    assert float(last["val_exit_1_loss"]) == pytest.approx(report["exits"][0]["loss"], rel=2e-3)


def test_zoo_list(capsys):
    assert cli.main(["zoo", "list"]) == 0
    assert capsys.readouterr().out.strip()


def test_eval_unknown_model():
    with pytest.raises(SystemExit, match="neither a saved model file nor a zoo preset"):
        cli.main(["eval", "no-such-model"])


@pytest.mark.parametrize(
    "argv,exits",
    [
        (["--family", "resnet", "--depth", "8"], 3),
        (["--family", "densenet", "--depth", "16", "--growth-rate", "4"], 6),
        (["--family", "msdnet", "--n-blocks", "2"], 2),
    ],
)
def test_train_builds_each_family(argv, exits):
    args = cli.parser().parse_args(["train", *argv, "--out", "unused"])
    model = training.build_model(cli.train_config(args))
    assert model.output_names == [f"exit_{k}" for k in range(1, exits + 1)]


def test_train_opt_builds_only_the_network_up_to_that_exit():
    argv = ["train", "--depth", "8", "--weighting", "opt", "--opt-at", "2", "--out", "unused"]
    model = training.build_model(cli.train_config(cli.parser().parse_args(argv)))
    assert model.output_names == ["exit_1", "exit_2"]  # exit 3 and its unit are cut off
    assert training.loss_weights("opt", model.num_exits) == [0.0, 1.0]


def test_train_refuses_a_model_option_its_family_does_not_take():
    args = cli.parser().parse_args(["train", "--family", "msdnet", "--depth", "20", "--out", "x"])
    with pytest.raises(ValueError, match="--family msdnet takes no --depth.*--msdnet-config"):
        cli.train_config(args)


@pytest.mark.slow
def test_train_on_jax_without_tensorflow(cifar_dir, tmp_path):
    """A JAX machine without TensorFlow (say, a CUDA one): train reads the NumPy folder."""
    blocked = tmp_path / "blocked"
    for name in ("tensorflow", "tensorflow_datasets"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')")
    env = {**os.environ, **JAX_ENV, "PYTHONPATH": os.pathsep.join([str(blocked), str(REPO)])}
    out = tmp_path / "run"
    run = subprocess.run(
        [*_train_cmd(out, cifar_dir, 1)[:-2], "--verbose", "0"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["backend"] == "jax"
    report = json.loads((out / "eval.json").read_text())
    assert [r["exit"] for r in report["exits"]] == [1, 2, 3]
    with open(out / "history.csv") as f:
        assert "adaloss_w_3" in next(csv.reader(f))


def test_zoo_add_refuses_an_opt_run(tmp_path):
    argv = ["train", "--depth", "8", "--weighting", "opt", "--opt-at", "2", "--out", "x"]
    args = vars(cli.parser().parse_args(argv))
    (tmp_path / "run.json").write_text(json.dumps({"argv": argv, "args": args}, default=str))
    with pytest.raises(SystemExit, match="weighting opt run.*cannot be a zoo preset"):
        _add_preset().main([str(tmp_path), "--name", "opt2"])


@pytest.mark.slow
def test_train_stops_with_a_clear_error_when_the_loss_diverges(cifar_dir, tmp_path):
    argv = _train_cmd(tmp_path / "run", cifar_dir, 2)[3:]
    with pytest.raises(SystemExit, match=r"loss became (nan|inf) at batch") as stopped:
        cli.main([*argv, "--lr", "1e30", "--steps-per-epoch", "40", "--verbose", "0"])
    message = str(stopped.value)
    assert "of epoch 1" in message and "lower learning rate (--lr)" in message
    batch = int(message.split("at batch ")[1].split()[0])
    assert batch < 40  # stopped at the first bad batch, not at the end of the epoch
    assert _epochs_in(tmp_path / "run" / "history.csv") == []  # the NaN epoch is not logged


@pytest.mark.slow
def test_a_run_from_a_preset_records_it_and_zoo_add_keeps_every_stage(cifar_dir, tmp_path):
    from keras_anytime import presets

    parent = presets.get_preset("resnet20_cifar10")
    out = tmp_path / "run"
    argv = ["train", "--family", "resnet", "--depth", "20", "--weights", "cifar10", "--epochs",
            "1", "--steps-per-epoch", "2", "--batch-size", "32", "--data-dir", str(cifar_dir),
            "--out", str(out), "--verbose", "0"]  # fmt: skip
    assert cli.main(argv) == 0
    started = json.loads((out / "run.json").read_text())["starts_from"]
    assert started["name"] == "resnet20_cifar10" and started["sha256"] == parent["sha256"]
    assert started["command"] == parent["command"]
    assert started["epochs_completed"] == parent["epochs_completed"]

    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"presets": [parent]}))
    add = [str(out), "--name", "resnet20_cifar10", "--zoo-dir", str(folder)]
    assert _add_preset().main(add) == 0
    [entry] = json.loads((folder / "manifest.json").read_text())["presets"]
    assert entry["starts_from"] == started and "--weights cifar10" in entry["command"]
    assert entry["sha256"] == presets.sha256(folder / entry["file"]) != parent["sha256"]
    assert entry["epochs_completed"] == 1
    record = json.loads((out / "run.json").read_text())
    assert entry["hardware"] == record["hardware"] and entry["weights"] == "cifar10"
    assert entry["data"].startswith("cifar10, local NumPy folder")
    assert entry["train_split"] == "train (records 0..44,999)"


def test_a_resumed_run_keeps_the_preset_it_started_from(tmp_path):
    first = {"name": "resnet20_cifar10", "sha256": "0" * 64}
    (tmp_path / "backup").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"starts_from": first}))
    assert provenance.starts_from("cifar10", None, tmp_path) == first


def test_a_run_recorded_before_starts_were_kept_gets_its_first_start_at_epoch_0(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "training_metadata.json").write_text('{"epoch": 28, "batch": 0}')
    first = {"keras": "3.15.1", "backend": "tensorflow", "precision": "bfloat16", "hardware": "x"}
    (tmp_path / "run.json").write_text(json.dumps({"argv": [], **first}))
    now = {**first, "precision": "float32", "jit_compile": True}
    # a field the old record lacks (jit_compile) is unknown, not guessed
    earliest = {"epoch": 0, **first, "jit_compile": None}
    assert provenance.starts(tmp_path, now) == [earliest, {"epoch": 28, **now}]
    assert provenance.starts(tmp_path / "fresh", now) == [{"epoch": 0, **now}]


def test_every_queued_run_is_a_train_command_with_one_precision_writing_to_its_folder():
    runs = json.loads((REPO / "queue" / "queue.json").read_text())["runs"]
    assert len({run["out"] for run in runs}) == len(runs)
    for run in runs:
        program, *argv = run["command"].split()
        assert program == "keras-anytime" and argv[0] == "train", run["name"]
        config = cli.train_config(cli.parser().parse_args(argv))
        # A fixed precision and no XLA choice left to the CPU: a run resumed elsewhere keeps both.
        assert config.out == run["out"] and config.precision != "auto", run["name"]
        assert config.jit_compile != "auto", run["name"]
