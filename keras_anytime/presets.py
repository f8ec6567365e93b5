"""The preset store: the zoo's manifest and weight files, the one lookup of a builder's
`weights` argument (`lookup`) and the one loader of weights into a model (`load_weights`).

The manifest (`zoo/manifest.json` in the repository, installed as `keras_anytime/_zoo`)
lists each preset with its builder, configuration, weight file, sha256, training command
(and, for a preset trained in stages, the preset it started from) and per-exit `val`
accuracy. Nothing here downloads anything: the files ship with the package. This module
imports no model code: the builders resolve and load their `weights` here, and
`keras_anytime.zoo` builds a preset's model from its entry.

Names and tags: a preset's `name` (e.g. "resnet20_cifar10") is its key. Its tag (the
entry's `tag`, by default its `weights`, the data set it was trained on, e.g. "cifar10")
tells apart the presets of one builder configuration, so a configuration can have several
presets ("cifar10", "cifar10_cutout", ...), and the tag with the configuration names one:
`AnytimeResNet(depth=20, weights="cifar10")` loads the preset of that configuration tagged
"cifar10". A builder's `weights` takes a tag, a preset name or a file path.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from functools import cache
from pathlib import Path

__all__ = [
    "PRESET_WEIGHTS",
    "get_preset",
    "list_models",
    "load_weights",
    "lookup",
    "manifest",
    "names_a_preset",
    "sha256",
    "tag",
    "zoo_dir",
]

_HERE = Path(__file__).resolve().parent
# The data sets presets are trained on, each the default tag of its presets: a builder's
# `weights="cifar10"` asks for a preset even when the manifest has none of that config.
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
    """{name: manifest entry} of every preset (cached; do not modify).

    Raises:
        ValueError: when two presets share a name, or a builder configuration and a tag,
            or a tag is another preset's name: a `weights` argument would be ambiguous.
    """
    path, presets = zoo_dir() / "manifest.json", {}
    with open(path) as f:
        entries = json.load(f)["presets"]
    for entry in entries:
        if entry["name"] in presets:
            raise ValueError(
                f"The zoo manifest {path} has two presets named {entry['name']!r}: give "
                "each preset its own name."
            )
        for other in presets.values():
            if _key(other) == _key(entry):
                raise ValueError(
                    f"Presets {other['name']!r} and {entry['name']!r} in {path} are both "
                    f"{entry['builder']} {entry['config']} tagged {tag(entry)!r}: give one "
                    "of them another `tag`."
                )
        presets[entry["name"]] = entry
    for entry in presets.values():
        if tag(entry) in presets.keys() - {entry["name"]}:
            raise ValueError(
                f"Preset {entry['name']!r} in {path} has the tag {tag(entry)!r}, another "
                "preset's name: give it another `tag`."
            )
    return presets


def _key(entry: dict) -> tuple:
    return entry["builder"], entry["config"], tag(entry)


def tag(preset: dict) -> str:
    """The tag of a manifest entry: its `tag`, else its `weights` ("cifar10").

    Args:
        preset: a manifest entry.
    """
    return preset.get("tag", preset["weights"])


def list_models() -> list[str]:
    """Names of the pretrained presets, sorted."""
    return sorted(manifest())


def get_preset(name: str) -> dict:
    """The manifest entry of a preset (a copy).

    Args:
        name: the preset's name, e.g. "resnet20_cifar10" (see `list_models()`).

    Raises:
        ValueError: no preset has that name.
    """
    presets = manifest()
    if name not in presets:
        raise ValueError(f"Unknown zoo preset {name!r}. Presets: {list_models() or 'none yet'}.")
    return copy.deepcopy(presets[name])


def _tags() -> set[str]:
    return {*PRESET_WEIGHTS, *map(tag, manifest().values())}


def names_a_preset(weights) -> bool:
    """Whether a builder's `weights` argument names a preset (a name or a tag), not a file.

    Args:
        weights: the builder's `weights` argument.
    """
    return isinstance(weights, str) and (weights in manifest() or weights in _tags())


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in blocks of 1 MiB.

    Args:
        path: the file.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lookup(
    builder: str, config: dict, weights: str | os.PathLike, *, classes: int | None = None
) -> dict | None:
    """The manifest entry that a builder's `weights` argument names; None for a file.

    Args:
        builder: the builder's name, e.g. "AnytimeResNet".
        config: the builder's configuration, as in the model's `builder_config`.
        weights: a preset name (e.g. "resnet20_cifar10"; the preset must be of `builder`
            and `config`), a tag (e.g. "cifar10": the preset of `builder` and `config`
            with that tag) or the path of a `.weights.h5` / `.keras` file.
        classes: the number of classes of the top the weights will be loaded into, checked
            against the preset's; None (default) for no top.

    Returns:
        A copy of the preset's manifest entry, or None when `weights` is an existing file.

    Raises:
        ValueError: `weights` names no preset, tag or file, a preset of another builder or
            configuration, or a preset with another number of classes.

    Example:

    ```python
    config = AnytimeResNet20().builder_config[1]
    presets.lookup("AnytimeResNet", config, "cifar10")["name"]  # "resnet20_cifar10"
    ```
    """
    presets = manifest()
    if not names_a_preset(weights):
        if Path(weights).is_file():
            return None
        raise ValueError(
            f"weights={weights!r} is neither a preset name ({list_models() or 'none yet'}), "
            f"a tag ({', '.join(sorted(_tags()))}) nor an existing file. Use None for random "
            "initialisation, a preset name or tag, or the path of a .weights.h5 file."
        )
    preset = presets.get(weights)
    if preset is None:
        preset = _tagged(builder, config, weights)
    elif (preset["builder"], preset["config"]) != (builder, config):
        raise ValueError(
            f"Preset {weights!r} is {preset['builder']} with config {preset['config']}, not "
            f"{builder} with config {config}. Build it with "
            f"keras_anytime.zoo.from_preset({weights!r}), or give the builder that config."
        )
    if classes is not None and classes != preset["classes"]:
        raise ValueError(
            f"weights={weights!r} has a {preset['classes']}-class top, but classes={classes}. "
            f"Use classes={preset['classes']}, or include_top=False to reuse the backbone."
        )
    return copy.deepcopy(preset)


def _tagged(builder: str, config: dict, wanted: str) -> dict:
    """The preset of `builder` and `config` tagged `wanted`."""
    for preset in manifest().values():
        if _key(preset) == (builder, config, wanted):
            return preset
    same = [
        f"{p['name']} (tag {tag(p)!r})"
        for p in manifest().values()
        if (p["builder"], p["config"]) == (builder, config)
    ]
    available = [f"{p['name']} ({p['builder']} {p['config']})" for p in manifest().values()]
    raise ValueError(
        f"No {wanted!r} checkpoint for {builder} with config {config}. "
        + (f"This configuration has the presets {', '.join(same)}. " if same else "")
        + f"Presets that exist: {available or 'none yet'}. Use weights=None to train from "
        "scratch."
    )


def load_weights(model, weights: dict | str | os.PathLike) -> None:
    """Load a preset's or a file's weights into `model`: the one loader of the package.

    Args:
        model: a model of the configuration the weights were saved from.
        weights: a manifest entry (from `lookup` or `get_preset`), whose file is checked
            against the entry's sha256 before it is read; or the path of a `.weights.h5`
            or `.keras` file.

    Raises:
        FileNotFoundError: a preset's file is missing.
        ValueError: a preset's file does not have its sha256, or a file does not load
            into `model` (unreadable, or saved from another configuration).

    Example:

    ```python
    model = AnytimeResNet20()
    presets.load_weights(model, presets.get_preset("resnet20_cifar10"))
    ```
    """
    path = _checked_file(weights) if isinstance(weights, dict) else Path(weights)
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


def _checked_file(preset: dict) -> Path:
    """The weight file of manifest entry `preset`, after checking it has its sha256."""
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
    return path
