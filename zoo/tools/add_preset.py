"""Add (or replace) a zoo preset from a finished `keras-anytime train` run (maintainers).

    python3 zoo/tools/add_preset.py RUN --name NAME [--note TEXT]

Builds the run's network from its recorded arguments (RUN/run.json), loads its best `val`
checkpoint (RUN/best.weights.h5), evaluates every exit on the run's own val split, and
writes NAME.weights.h5 (the weights alone) and its manifest entry into this folder (or
`--zoo-dir`). Every fact in the entry comes from the run: its command, data set and
data folder, splits, epochs, wall time (history.csv), hardware and versions; only the
name and the note are the maintainer's.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import json
import shlex
import sys
from pathlib import Path

ZOO = Path(__file__).resolve().parent.parent


def _data_text(data: dict) -> str:
    if data.get("source") == "local NumPy folder":
        holds = data.get("holds") or {}
        digest = holds.get("val_sha256")
        return f"{data['name']}, local NumPy folder" + (f" (val sha256 {digest})" if digest else "")
    return f"{data['name']}, {data.get('source', 'tensorflow-datasets')}"


def entry_for(
    run: Path, name: str, note: str, data_dir: str | None = None, hardware: str | None = None
) -> tuple[dict, object]:
    """The manifest entry of run folder `run` as preset `name`, and its model. `hardware`
    is for runs whose run.json predates its `hardware` record."""
    import keras_anytime
    from keras_anytime import datasets, presets, training
    from keras_anytime.evaluation import evaluate_exits, format_table
    from keras_anytime.flops import exit_flops
    from keras_anytime.training import provenance

    info = json.loads((run / "run.json").read_text())
    args = dataclasses.replace(training.TrainConfig.from_run_json(run), weights=None)
    if not info.get("argv"):
        raise SystemExit(
            f"{run} was trained from Python: its run.json holds no command line, which a "
            "preset keeps as the command that trains it from scratch. Train it with "
            "keras-anytime train."
        )
    model = training.build_model(args)
    if model.builder_config is None:
        raise SystemExit(
            f"{run} is a --weighting opt run: its network is cut off after exit "
            f"{model.num_exits}, which no builder makes, so it cannot be a zoo preset."
        )
    if args.data not in presets.PRESET_WEIGHTS:
        raise SystemExit(
            f"{run} trained on {args.data!r}; builders load presets of "
            f"{presets.PRESET_WEIGHTS} only: add the name to presets.PRESET_WEIGHTS first."
        )
    hardware = info.get("hardware", hardware)
    if hardware is None:
        raise SystemExit(f"{run}/run.json does not record the hardware: pass --hardware.")
    data = info.get("data") or provenance.data_record(args.data, args.data_dir)
    model.load_weights(run / "best.weights.h5")
    val = training.eval_batches(args.data, args.val_split, data_dir or args.data_dir, 256)
    rows = evaluate_exits(model, val)
    print(format_table(rows, args.val_split))
    with open(run / "history.csv") as f:
        history = list(csv.DictReader(f))
    builder, config = model.builder_config
    backend = info["backend"]
    entry = {
        "name": name,
        "builder": builder,
        "config": config,
        "weights": args.data,
        "classes": args.classes,
        "file": f"{name}.weights.h5",
        "sha256": None,  # of the file written by `add`
        "data": _data_text(data),
        "train_split": f"{args.train_split} ({datasets.SPLIT_RECORDS[args.train_split]})",
        "selected_on": f"{args.val_split} ({datasets.SPLIT_RECORDS[args.val_split]}), "
        "best last exit",
        "command": shlex.join(info["argv"]),
        "epochs": args.epochs,
        "epochs_completed": len(history),
        "wall_time_hours": round(
            sum(float(r.get("epoch_seconds") or 0) for r in history) / 3600, 2
        ),
        "hardware": hardware,
        "val_accuracy": [round(r["accuracy"], 4) for r in rows],
        "macs": exit_flops(model),
        "params": model.count_params(),
        "versions": {
            "keras_anytime": keras_anytime.__version__,
            "keras": info["keras"],
            backend: importlib.import_module(backend).__version__,
        },
        "starts_from": info.get("starts_from"),
        "note": note,
    }
    return entry, model


def add(run: Path, name: str, note: str, zoo_dir: Path, tag: str | None = None, **kwargs) -> dict:
    """Write NAME.weights.h5 and the entry into `zoo_dir`/manifest.json; returns the entry.
    `tag` tells the preset from another of the same configuration (default: the entry it
    replaces keeps its tag; a new one has none, i.e. its `weights`). `kwargs`: `data_dir`,
    `hardware` of `entry_for`."""
    from keras_anytime import presets

    entry, model = entry_for(run, name, note, **kwargs)
    manifest_path = zoo_dir / "manifest.json"
    entries = json.loads(manifest_path.read_text())["presets"]
    replaced = [p for p in entries if p["name"] == name]
    tag = tag or (replaced[0].get("tag") if replaced else None)
    if tag:
        entry["tag"] = tag
    target = zoo_dir / entry["file"]
    model.save_weights(target)  # the weights alone, without the optimiser state
    entry["sha256"] = presets.sha256(target)
    entries = [p for p in entries if p["name"] != name] + [entry]
    manifest_path.write_text(json.dumps({"presets": entries}, indent=2) + "\n")
    print(f"wrote {target} and {manifest_path}")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the train --out folder")
    parser.add_argument("--name", required=True, help="preset name, e.g. resnet20_cifar10")
    parser.add_argument("--note", default="", help="how far it is from the paper's figure")
    parser.add_argument("--zoo-dir", type=Path, default=ZOO)
    parser.add_argument("--data-dir", default=None, help="else the run's own")
    parser.add_argument("--hardware", default=None, help="only if run.json lacks it")
    parser.add_argument(
        "--tag", default=None, help="for a second preset of one configuration, e.g. cifar10_long"
    )
    args = parser.parse_args(argv)
    add(
        args.run,
        args.name,
        args.note,
        args.zoo_dir,
        tag=args.tag,
        data_dir=args.data_dir,
        hardware=args.hardware,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
