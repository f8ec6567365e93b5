"""What a run's run.json records besides its configuration: where its images and its
initial weights came from, and what each start of a resumed run ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

__all__ = ["START_FIELDS", "data_record", "hardware", "starts", "starts_from"]

START_FIELDS = ("keras", "backend", "precision", "jit_compile", "hardware")


def data_record(name: str, data_dir: str | None) -> dict:
    """Where a run's images came from: the local folder and what it holds, or tfds.

    Args:
        name: the data set's name.
        data_dir: the run's data folder (None: $KERAS_ANYTIME_DATA, else tfds).
    """
    from keras_anytime import datasets

    folder = datasets.local_dir(data_dir)
    if folder is None:
        return {"name": name, "source": "tensorflow-datasets"}
    return {
        "name": name,
        "source": "local NumPy folder",
        "folder": str(folder.resolve()),
        "holds": datasets.describe(folder),
    }


def starts(out: Path, this: dict) -> list[dict]:
    """Each start of the run in `out`, oldest first, as recorded in its run.json.

    Each is the 0-based epoch it began at and its START_FIELDS, `this` for this start. A
    run resumed elsewhere keeps what it began on, e.g. mixed_bfloat16 before float32 on
    another CPU. A record without `starts` is that of a run started once, at epoch 0.

    Args:
        out: the run's folder.
        this: this start's START_FIELDS.
    """
    metadata = out / "backup" / "training_metadata.json"
    recorded = out / "run.json"
    if not (metadata.is_file() and recorded.is_file()):
        return [{"epoch": 0, **this}]
    previous = json.loads(recorded.read_text())
    earlier = previous.get("starts") or [
        {"epoch": 0, **{key: previous.get(key) for key in START_FIELDS}}
    ]
    # BackupAndRestore's count of finished epochs, the index of the one it resumes
    epoch = json.loads(metadata.read_text())["epoch"]
    return [*earlier, {"epoch": epoch, **this}]


def starts_from(weights: str | None, builder_config, out: Path) -> dict | None:
    """Where a run's initial weights came from, for its run.json.

    For a preset (a tag such as "cifar10" or a preset name), its name, sha256 and training
    record (its own `starts_from` included), so that a preset trained in stages keeps
    every stage; for a file, its path and sha256; None from scratch. A resumed run keeps
    what its first start recorded: the preset may have been replaced since, by this run.

    Args:
        weights: the run's `weights` (a preset tag or name, a file path, or None).
        builder_config: the family model's `builder_config` (builder name, config).
        out: the run's folder.
    """
    from keras_anytime import presets

    recorded = out / "run.json"
    if (out / "backup").is_dir() and recorded.is_file():
        previous = json.loads(recorded.read_text())
        if "starts_from" in previous:
            return previous["starts_from"]
    if not weights:
        return None
    preset = presets.lookup(*builder_config, weights)
    if preset is None:
        return {"file": str(Path(weights).resolve()), "sha256": presets.sha256(weights)}
    record = ("name", "sha256", "command", "epochs_completed", "wall_time_hours", "hardware")
    return {
        **{key: preset[key] for key in record},
        "val_accuracy_last_exit": preset["val_accuracy"][-1],
        "starts_from": preset.get("starts_from"),
    }


def hardware() -> str:
    """This machine, e.g. "AMD EPYC, 2 cores, native bfloat16, no GPU"."""
    import keras

    from keras_anytime.hardware import cpu_has_bfloat16, has_gpu

    accelerator = "a GPU" if has_gpu(keras.config.backend()) else "no GPU"
    bfloat16 = "native bfloat16" if cpu_has_bfloat16() else "no native bfloat16"
    return f"{_cpu_name()}, {os.cpu_count()} cores, {bfloat16}, {accelerator}"


def _cpu_name() -> str:
    """The CPU's model name (Linux `/proc/cpuinfo`), else the machine type, e.g. "x86_64"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
