"""The assembly of benchmarks/paper_table.py (the runs themselves are hours long) and its table
of finished runs (`--table-only`), on run folders the tests write."""

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "paper_table.py"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # paper_table imports paper_finished by its name
    spec.loader.exec_module(module)
    return module


paper_finished = load("paper_finished")
paper_table = load("paper_table")


def test_exit_at_fractions_of_depth():
    assert [paper_table.exit_at(f, 15) for f in (0.25, 0.5, 0.75, 1.0)] == [4, 8, 11, 15]
    assert paper_table.exit_at(0.25, 2) == 1


def test_table_is_relative_error_increase_over_opt():
    errors = {"const": [0.5, 0.4, 0.3, 0.2], "adaloss": [0.6, 0.45, 0.3, 0.1]}
    opt = {"1/4": 0.4, "1/2": 0.3, "3/4": 0.25, "1": 0.1}
    result = paper_table.table(errors, opt, 4)
    assert result["exits"] == {"1/4": 1, "1/2": 2, "3/4": 3, "1": 4}
    assert result["relative_error_increase_vs_opt"]["const"] == pytest.approx(
        {"1/4": 25.0, "1/2": 33.33, "3/4": 20.0, "1": 100.0}
    )
    assert result["relative_error_increase_vs_opt"]["adaloss"]["1"] == pytest.approx(0.0)
    assert result["errors"]["opt"] == opt


def test_assemble_averages_the_seeds_and_keeps_each():
    # 4 exits: fractions 1/4..1 are exits 1..4; OPT at exit k has k exits
    acc = {("const", 0): [0.5, 0.6, 0.7, 0.8], ("const", 1): [0.7, 0.8, 0.9, 0.8]}
    acc[("adaloss", 0)] = [0.4, 0.6, 0.7, 0.9]
    for k, f in enumerate(["1/4", "1/2", "3/4", "1"], start=1):
        for seed, a in ((0, 0.9), (1, 0.7)):  # OPT error 0.2 on average at every fraction
            acc[(f"opt@{f}", seed)] = [0.0] * (k - 1) + [a]
    result = paper_table.assemble(acc, 4)
    assert result["seeds"] == {"const": [0, 1], "adaloss": [0], "opt": [0, 1]}
    assert result["errors"]["opt"] == pytest.approx({f: 0.2 for f in paper_table.FRACTIONS})
    # const's mean error at exit 1 is 0.4: +100% over OPT; its seeds 0.5 and 0.3: +150%, +50%
    assert result["relative_error_increase_vs_opt"]["const"]["1/4"] == pytest.approx(100.0)
    assert result["per_seed"]["const"]["0"]["1/4"] == pytest.approx(150.0)
    assert result["per_seed"]["const"]["1"]["1/4"] == pytest.approx(50.0)
    assert result["relative_error_increase_vs_opt"]["adaloss"]["1"] == pytest.approx(-50.0)
    assert result["accuracy"]["const-s1"] == [0.7, 0.8, 0.9, 0.8]
    # exit 3 (3/4): AdaLoss 70 against CONST's 70 and 90; exit 4: 90 against 80 and 80
    claim = result["adaloss_vs_const"]
    assert claim["3/4"]["difference_points"] == pytest.approx(-10.0)
    assert claim["3/4"]["seed_spread_points"] == pytest.approx(20.0)
    assert claim["3/4"]["verdict"] == "within the seed spread"
    assert claim["1"]["difference_points"] == pytest.approx(10.0)
    assert claim["1"]["verdict"] == "ahead"


def test_adaloss_vs_const_with_one_seed_each_has_no_spread():
    acc = {("const", 0): [0.5, 0.9], ("adaloss", 0): [0.6, 0.7]}
    claim = paper_table.adaloss_vs_const(acc, 2)
    assert claim["1"]["difference_points"] == pytest.approx(-20.0)
    assert claim["1"]["seed_spread_points"] is None
    assert claim["1"]["verdict"] == "one seed"


def test_gaps_at_equal_macs_interpolate_the_large_network():
    large = [[10, 0.5], [20, 0.7], [40, 0.9]]
    small = [[5, 0.4], [15, 0.65], [40, 0.85]]
    gaps = paper_table.gaps_at_equal_macs(small, large)
    assert gaps[0] is None  # cheaper than the large network's first exit
    assert gaps[1:] == pytest.approx([-5.0, 5.0])


@pytest.mark.slow
def test_dry_run_lists_every_run():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--depth", "20", "--seeds", "0,1", "--large-depth", "32",
         "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("keras-anytime train")]
    # 6 schemes (CONST and AdaLoss twice), OPT at 4 depths twice, the large CONST network
    assert len(lines) == 6 + 2 + 8 + 1
    assert sum("--weighting opt" in line for line in lines) == 8
    assert any("--opt-at 9" in line and "--seed 1" in line for line in lines)  # ResNet-20: 9
    assert sum("--final-extra 1.0" in line for line in lines) == 1
    assert any("--depth 32" in line and "--weighting const" in line for line in lines)


def test_precisions_lists_each_start_of_a_resumed_run(tmp_path):
    once, resumed = tmp_path / "once", tmp_path / "resumed"
    once.mkdir()
    resumed.mkdir()
    (once / "run.json").write_text(json.dumps({"precision": "bfloat16"}))
    starts = [{"epoch": 0, "precision": "bfloat16"}, {"epoch": 28, "precision": "float32"}]
    (resumed / "run.json").write_text(json.dumps({"precision": "float32", "starts": starts}))
    assert paper_table.precisions(once) == ["bfloat16"]
    assert paper_table.precisions(resumed) == ["bfloat16", "float32"]


NUM_EXITS = 9  # ResNet-20, an exit every unit: fractions 1/4..1 are exits 2, 4, 7, 9


def write_run(
    folder: Path,
    accuracy: list[float] | None,
    epochs: int = 3,
    precisions: tuple[str, ...] = ("bfloat16",),
    legacy: bool = False,
    **config,
) -> list[dict]:
    """A run folder as `keras-anytime train` leaves it after `epochs` epochs of the `fast`
    recipe (run.json, history.csv; eval.json with `accuracy` at exits 1..len, None:
    unfinished); returns the history rows, AdaLoss's weights and losses apart per epoch."""
    folder.mkdir(parents=True)
    config = {"epochs": 3, "recipe": "fast", **config}
    if legacy:  # keras-anytime 0.1 kept the parsed command line
        args = {"out": str(folder), "family": "resnet", "depth": 20, "exit_every": 1}
        record = {"args": {**args, **config}}
    else:
        record = {
            "config": paper_finished.TrainConfig(
                str(folder), model={"depth": 20, "exit_every": 1}, **config
            ).to_dict()
        }
    record["argv"] = ["keras-anytime", "train", "--out", str(folder)]
    record["starts"] = [{"epoch": e, "precision": p} for e, p in enumerate(precisions)]
    (folder / "run.json").write_text(json.dumps(record))
    rows = [
        {"epoch": e}
        | {f"adaloss_w_{k}": round(1 / (k + e + 1), 4) for k in range(1, NUM_EXITS + 1)}
        | {f"exit_{k}_loss": round(2 - 0.1 * k - 0.3 * e, 4) for k in range(1, NUM_EXITS + 1)}
        for e in range(epochs)
    ]
    with open(folder / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if accuracy is not None:
        exits = [{"accuracy": a, "macs": 1000 * k} for k, a in enumerate(accuracy, start=1)]
        (folder / "eval.json").write_text(json.dumps({"exits": exits}))
    return rows


def table_only(monkeypatch, out: Path, *flags: str) -> dict:
    """Run `paper_table.py --table-only` on the runs in `out`; its JSON."""
    argv = ["paper_table.py", "--table-only", "--depth", "20", "--epochs", "3", "--seeds", "0,1"]
    argv += ["--out", str(out), "--json", str(out / "table.json")]
    argv += ["--figure-prefix", str(out / "fig"), *flags]
    monkeypatch.setattr(sys, "argv", argv)
    paper_table.main()
    return json.loads((out / "table.json").read_text())


def test_table_only_tabulates_the_finished_runs_and_says_what_is_missing(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    const = [0.5 + 0.04 * k for k in range(1, NUM_EXITS + 1)]  # exit 7: 0.78, exit 9: 0.86
    write_run(out / "const-s0", const, weighting="const", legacy=True)
    adaloss = [a + 0.01 for a in const]
    rows = write_run(
        out / "adaloss-s0", adaloss, weighting="adaloss", precisions=("bfloat16", "float32")
    )
    write_run(out / "adaloss-s1", None, weighting="adaloss", seed=1)  # still training
    write_run(out / "const-s1", const, epochs=2, weighting="const", seed=1)  # an epoch lost
    write_run(out / "opt7-s0", [0.0] * 6 + [0.9], weighting="opt", opt_at=7)
    write_run(out / "opt9-s0", [0.0] * 8 + [0.95], weighting="opt", opt_at=9)
    write_run(out / "opt9-s1", [0.0] * 6 + [0.97], weighting="opt", opt_at=7, seed=1)
    result = table_only(monkeypatch, out)

    assert result["seeds"] == {"const": [0], "adaloss": [0], "opt": [0]}
    assert result["opt_seeds"] == {"1/4": [], "1/2": [], "3/4": [0], "1": [0]}
    increase = result["relative_error_increase_vs_opt"]["const"]
    assert increase["3/4"] == pytest.approx(100 * (0.22 - 0.1) / 0.1)
    assert increase["1"] == pytest.approx(100 * (0.14 - 0.05) / 0.05)
    assert increase["1/4"] is None and increase["1/2"] is None  # no OPT there: no number
    assert result["errors"]["opt"]["1/4"] is None
    assert result["errors"]["const"]["1/4"] == pytest.approx(1 - const[1])
    missing = result["missing"]
    assert missing["opt_at"] == ["1/4", "1/2"]
    assert missing["schemes"] == ["linear", "half_end", "sieve", "adaloss_cifar"]
    assert "unfinished" in missing["runs"]["adaloss-s1"]
    assert "history.csv has 2 rows" in missing["runs"]["const-s1"]
    assert "opt_at" in missing["runs"]["opt@1-s1"]  # its run.json says exit 7, not 9
    assert missing["runs"]["opt@1/4-s0"].endswith("missing")
    included = {"const-s0", "adaloss-s0", "opt@3/4-s0", "opt@1-s0"}
    assert set(result["accuracy"]) == included
    assert not included & set(missing["runs"])
    assert result["epochs"] == 3
    assert result["epochs_completed"] == {run: 3 for run in included}
    assert result["precision"]["adaloss-s0"] == ["bfloat16", "float32"]
    assert result["precision_changed"] == ["adaloss-s0"]
    assert result["adaloss_vs_const"]["1"]["difference_points"] == pytest.approx(1.0)
    assert result["adaloss_vs_const"]["1"]["verdict"] == "one seed"
    assert f"--out {out / 'const-s0'}" in result["commands"][0]
    # the last epoch's weights and losses, exits 1..9
    last = rows[-1]
    assert result["adaloss_final"] == {
        "adaloss-s0": {
            "weights": [last[f"adaloss_w_{k}"] for k in range(1, NUM_EXITS + 1)],
            "train_losses": [last[f"exit_{k}_loss"] for k in range(1, NUM_EXITS + 1)],
        }
    }
    assert "small_vs_large" not in result
    figures = sorted(p.name for p in out.glob("fig*.png"))
    assert figures == ["fig_adaloss_weights_adaloss-s0.png", "fig_anytime.png"]


def test_table_only_averages_the_finished_seeds(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    for seed, (c, a) in enumerate(((0.8, 0.9), (0.9, 0.92))):
        write_run(out / f"const-s{seed}", [c] * NUM_EXITS, weighting="const", seed=seed)
        write_run(out / f"adaloss-s{seed}", [a] * NUM_EXITS, weighting="adaloss", seed=seed)
    write_run(out / "opt9-s1", [0.0] * 8 + [0.95], weighting="opt", opt_at=9, seed=1)
    result = table_only(monkeypatch, out)
    assert result["seeds"] == {"const": [0, 1], "adaloss": [0, 1], "opt": [1]}
    # CONST's mean error 0.15 against OPT's 0.05 (seed 1 only); seed 0's 0.2
    assert result["relative_error_increase_vs_opt"]["const"]["1"] == pytest.approx(200.0)
    assert result["per_seed"]["const"]["0"]["1"] == pytest.approx(300.0)
    claim = result["adaloss_vs_const"]["1"]
    assert claim["difference_points"] == pytest.approx(6.0)
    assert claim["seed_spread_points"] == pytest.approx(10.0)
    assert claim["verdict"] == "within the seed spread"
    assert set(result["adaloss_final"]) == {"adaloss-s0", "adaloss-s1"}
    assert result["precision_changed"] == []


def test_table_only_without_a_finished_run_stops(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    write_run(out / "const-s0", None, weighting="const")
    with pytest.raises(SystemExit, match="No finished run"):
        table_only(monkeypatch, out)
    assert not (out / "table.json").exists()


def test_expected_config_follows_the_planned_command(tmp_path):
    args = argparse.Namespace(
        depth=20, epochs=300, recipe="paper", seeds="0,1", large_depth=32, data_dir=None,
        train_args="--mixed-precision --gamma 0.1", out=str(tmp_path),
    )  # fmt: skip
    planned = paper_table.runs(args, NUM_EXITS)
    cifar = paper_finished.expected_config(planned["adaloss_cifar", 0][0])
    assert (cifar["weighting"], cifar["adaloss_momentum"], cifar["final_extra"]) == (
        "adaloss", 0.99, 1.0,
    )  # fmt: skip
    assert cifar["gamma"] == 0.1  # from --train-args, after a switch
    assert (cifar["epochs"], cifar["recipe"], cifar["depth"]) == (300, "paper", 20)
    opt = paper_finished.expected_config(planned["opt@3/4", 1][0])
    assert (opt["weighting"], opt["opt_at"], opt["seed"], opt["final_extra"]) == ("opt", 7, 1, 0.0)
    assert paper_finished.expected_config(planned["large_const", 0][0])["depth"] == 32
