"""The assembly of benchmarks/paper_table.py (the runs themselves are hours long)."""

import importlib.util
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


def test_dry_run_lists_the_seven_runs():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--depth", "20", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("keras-anytime train")]
    assert len(lines) == 7
    assert sum("--weighting opt" in line for line in lines) == 4
    assert any("--opt-at 9" in line for line in lines)  # ResNet-20: 9 exits
