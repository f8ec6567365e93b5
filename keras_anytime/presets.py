"""The preset store: the zoo's manifest and weight files, and the one place that resolves
a preset name, or a builder's (name, config, weights) triple, to a hash-checked file.

The manifest (`zoo/manifest.json` in the repository, installed as `keras_anytime/_zoo`)
lists each preset with its builder, configuration, weight file, sha256, training command
(and, for a preset trained in stages, the preset it started from) and per-exit `val`
accuracy. Nothing here downloads anything: the files ship with the package. This module
imports no model code: the builders resolve their `weights` here, and `keras_anytime.zoo`
builds a preset's model from its entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent
PRESET_WEIGHTS = ("cifar10",)


def zoo_dir() -> Path:
    """The folder holding the manifest and weight files (installed, else the checkout)."""
    for candidate in (_HERE / "_zoo", _HERE.parent / "zoo"):
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"No zoo manifest found in {_HERE / '_zoo'} or {_HERE.parent / 'zoo'}: reinstall "
        "keras-anytime (`pip install .` from the repository)."
    )


@cache
def manifest() -> dict[str, dict]:
    """{name: manifest entry} of every preset (cached; do not modify)."""
    with open(zoo_dir() / "manifest.json") as f:
        presets = json.load(f)["presets"]
    return {p["name"]: p for p in presets}


def list_models() -> list[str]:
    """Names of the pretrained presets, sorted."""
    return sorted(manifest())


def get_preset(name: str) -> dict:
    """The manifest entry of preset `name` (a copy)."""
    presets = manifest()
    if name not in presets:
        raise ValueError(f"Unknown zoo preset {name!r}. Presets: {list_models() or 'none yet'}.")
    return json.loads(json.dumps(presets[name]))


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_preset(builder: str, config: dict, weights: str = "cifar10") -> dict:
    """The manifest entry for `builder` with exactly `config`, pretrained on `weights`."""
    for preset in manifest().values():
        if (preset["builder"], preset["config"], preset["weights"]) == (builder, config, weights):
            return preset
    available = [f"{p['name']} ({p['builder']} {p['config']})" for p in manifest().values()]
    raise ValueError(
        f"No {weights!r} checkpoint for {builder} with config {config}. Presets that "
        f"exist: {available or 'none yet'}. Use weights=None to train from scratch."
    )


def weights_path(
    builder: str, config: dict, weights: str, *, classes: int, include_top: bool
) -> tuple[Path, int]:
    """Resolve a builder's `weights` argument to a checked file and its number of classes.

    `weights` is a preset data name ("cifar10") or a file path. A preset is matched on the
    builder and its exact configuration; its sha256 is verified before use.
    """
    if weights not in PRESET_WEIGHTS:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(
                f"weights={weights!r} is neither a preset ({', '.join(PRESET_WEIGHTS)}) nor "
                "an existing file. Use None for random initialisation, 'cifar10', or the "
                "path of a .weights.h5 file."
            )
        return path, classes
    preset = find_preset(builder, config, weights)
    if include_top and classes != preset["classes"]:
        raise ValueError(
            f"weights={weights!r} has a {preset['classes']}-class top, but classes={classes}. "
            f"Use classes={preset['classes']}, or include_top=False to reuse the backbone."
        )
    path = zoo_dir() / preset["file"]
    if not path.is_file():
        raise FileNotFoundError(
            f"Preset {preset['name']!r}: weight file {path} is missing; reinstall "
            f"keras-anytime. Presets: {list_models()}."
        )
    actual = sha256(path)
    if actual != preset["sha256"]:
        raise ValueError(
            f"Preset {preset['name']!r}: {path} has sha256 {actual}, the manifest says "
            f"{preset['sha256']}. The file is corrupt or was replaced; reinstall keras-anytime."
        )
    return path, preset["classes"]


def load_weights_into(model, path: str | os.PathLike) -> None:
    """Load a `.weights.h5` or `.keras` checkpoint into `model`, with a clear error when
    the file is unreadable or was saved from another configuration."""
    path = Path(path)
    try:
        if path.suffix == ".keras":
            import keras

            saved = keras.saving.load_model(path, compile=False)
            model.set_weights(saved.get_weights())
        else:
            model.load_weights(path)
    except Exception as e:  # noqa: BLE001 - re-raised with the file and the fix
        raise ValueError(
            f"Could not load weights from {path} into {model.name}: {e}. The file is "
            "corrupt or was saved from a different configuration (depth, width, "
            "exit_every, classes); build the model with the configuration it was saved from."
        ) from e
