"""The finished runs behind `paper_table.py`'s table: whether a run folder holds the run its
command trains, whole, and AdaLoss's weights and the exits' losses from its history.csv."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

from keras_anytime.training import TrainConfig

# the TrainConfig fields that tell the runs of the table apart or make them comparable
CHECKED = (
    "weighting", "opt_at", "gamma", "adaloss_momentum", "final_extra", "update_every",
    "epochs", "recipe", "batch_size", "seed",
)  # fmt: skip


def history(folder: Path) -> list[dict[str, str]]:
    """The rows of a run's history.csv, one per epoch trained."""
    with open(folder / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def precisions(folder: Path) -> list[str]:
    """The precisions a run trained in (sorted), from its run.json: each start's under
    `starts`, else the one it records (a run started once)."""
    record = json.loads((folder / "run.json").read_text())
    return sorted({start["precision"] for start in record.get("starts") or [record]})


def command(folder: Path) -> str | None:
    """The command line that trained the run, as run.json records it (None: from Python)."""
    argv = json.loads((folder / "run.json").read_text()).get("argv")
    return None if argv is None else " ".join(argv)


def expected_config(cmd: list[str]) -> dict:
    """What run.json records for the run that `keras-anytime train` command `cmd` trains:
    the `CHECKED` fields (TrainConfig's defaults where `cmd` leaves them) and the depth."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in CHECKED}
    # every "--flag value" pair; a switch pairs with the next flag, which CHECKED never names
    given = {a[2:].replace("-", "_"): b for a, b in zip(cmd, cmd[1:]) if a.startswith("--")}
    expected = {name: type(value)(given.get(name, value)) for name, value in defaults.items()}
    return {**expected, "depth": int(given["depth"])}


def why_left_out(folder: Path, cmd: list[str]) -> str | None:
    """Why the run in `folder` cannot enter the table, or None: missing, unfinished (no
    eval.json), trained otherwise than `cmd` says, or with a history.csv without exactly one
    row for each of its epochs."""
    if not folder.is_dir():
        return "missing"
    if not (folder / "eval.json").is_file():
        return "unfinished (no eval.json)"
    config = TrainConfig.from_run_json(folder)
    found = {name: getattr(config, name) for name in CHECKED}
    found["depth"] = config.model.get("depth")
    expected = expected_config(cmd)
    wrong = [k for k in expected if found[k] != expected[k]]
    if wrong:
        recorded, asked = ({k: d[k] for k in wrong} for d in (found, expected))
        return f"run.json records {recorded}, its command asks for {asked}"
    done = [int(row["epoch"]) for row in history(folder)]
    if done != list(range(config.epochs)):
        # a run killed between its backup and its history.csv row resumes without that row
        return f"history.csv has {len(done)} rows, not one for each epoch 0..{config.epochs - 1}"
    return None


def adaloss_final(rows: list[dict[str, str]], num_exits: int) -> dict:
    """AdaLoss's weights at the end of training (`adaloss_w_k` of the last history.csv row)
    and each exit's training loss over the last epoch (`exit_k_loss`), exits 1..K."""
    last = rows[-1]
    exits = range(1, num_exits + 1)
    return {
        "weights": [round(float(last[f"adaloss_w_{k}"]), 4) for k in exits],
        "train_losses": [round(float(last[f"exit_{k}_loss"]), 4) for k in exits],
    }


def plot_adaloss_weights(rows: list[dict[str, str]], num_exits: int, path: str, title: str):
    """Save each exit's AdaLoss weight at the end of each epoch, one line per exit, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [int(row["epoch"]) + 1 for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for k in range(1, num_exits + 1):
        ax.plot(epochs, [float(row[f"adaloss_w_{k}"]) for row in rows], label=f"exit {k}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("AdaLoss weight")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
