"""The assembly of benchmarks/paper_table.py (the runs themselves are hours long)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "paper_table.py"
spec = importlib.util.spec_from_file_location("paper_table", SCRIPT)
paper_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_table)


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
