"""A local folder of NumPy files: reading its splits and what it says it holds.

The folder is laid out like `shared/data/cifar10`: `train-*.npz` with `x` uint8
(N, H, W, 3) and `y` (N,), or else `train-jpeg.npz` with the JPEG bytes `jpeg`, `offsets`
(N + 1,) and `y`, decoded with Pillow; optional `test.npz`. `data_dir` or the environment
variable `KERAS_ANYTIME_DATA` chooses it.

It says what it holds: a `dataset.json` (`{"name": "cifar10"}`; optional `"val_sha256"`,
the `val_digest` of its val split), or, without one, the val images of the project's
CIFAR-10 copy (`AGREED_VAL_SHA256`), which mark it as `cifar10`. `load_numpy` refuses a
name the folder does not hold, and a CIFAR-10 `val` that is not the agreed images.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from keras_anytime.datasets.splits import SPLITS, TRAIN_SIZE

__all__ = [
    "AGREED_VAL_SHA256",
    "DESCRIPTION_FILE",
    "ENV_VAR",
    "describe",
    "load_numpy",
    "local_dir",
    "val_digest",
]

ENV_VAR = "KERAS_ANYTIME_DATA"
DESCRIPTION_FILE = "dataset.json"
# `val_digest` of the agreed CIFAR-10 val split: records 45,000..49,999 of the project's
# JPEG-decoded local copy (shared/data/cifar10), on which every zoo figure is measured.
AGREED_VAL_SHA256 = {"cifar10": "2bcdacd77e94237c886afb31b932c039648e8a2202ad62f90ebc84b8201504ff"}


def local_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local NumPy folder to read: `data_dir`, else $KERAS_ANYTIME_DATA, else None.

    Args:
        data_dir: a folder, or None to fall back on the environment variable `ENV_VAR`.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else None


def val_digest(x: np.ndarray, y: np.ndarray) -> str:
    """Hex sha256 of a split: what `AGREED_VAL_SHA256` and a `dataset.json`'s "val_sha256" hold.

    The hash covers the images (uint8 bytes, NHWC), then the labels (as uint8).

    Args:
        x: the images (N, H, W, C).
        y: the labels (N,).
    """
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
    h.update(np.asarray(y).astype(np.uint8).tobytes())
    return h.hexdigest()


def describe(data_dir: str | os.PathLike) -> dict:
    """What a local folder holds, as `{"name": ..., "val_sha256": ...}`.

    From its `dataset.json`; without one, `{"name": "cifar10", ...}` when its val split is
    the agreed CIFAR-10 val images, else `{"name": None}` (the folder does not say).

    Args:
        data_dir: the local NumPy folder.

    Raises:
        ValueError: a `dataset.json` that is not a JSON object with a "name".
    """
    folder = Path(data_dir)
    declared = folder / DESCRIPTION_FILE
    if declared.is_file():
        try:
            info = json.loads(declared.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{declared} is not valid JSON: {e}.") from e
        if not isinstance(info, dict) or not isinstance(info.get("name"), str):
            raise ValueError(f'{declared} must be a JSON object with a "name", got {info!r}.')
        return info
    digest = _folder_val_digest(*_folder_files(folder))
    for name, agreed in AGREED_VAL_SHA256.items():
        if digest == agreed:
            return {"name": name, "val_sha256": digest}
    return {"name": None}


def _check_holds(folder: Path, name: str, split: str) -> None:
    """Raise unless `folder` holds data set `name` and, for a CIFAR-10 `val`, the agreed
    images."""
    held = describe(folder).get("name")
    if held is None:
        raise ValueError(
            f"{folder} does not say which data set it holds, so it cannot be read as "
            f'{name!r}: write {folder / DESCRIPTION_FILE} with {{"name": "{name}"}}.'
        )
    if held != name:
        raise ValueError(
            f"{folder} holds {held!r} (its {DESCRIPTION_FILE} or its images say so), not "
            f"{name!r}. Point data_dir (or {ENV_VAR}) at a folder of {name!r}, or unset both "
            f"to load {name!r} through tensorflow-datasets."
        )
    digest = _folder_val_digest(*_folder_files(folder)) if split == "val" else None
    if split == "val" and name in AGREED_VAL_SHA256 and digest != AGREED_VAL_SHA256[name]:
        raise ValueError(
            f"The val split of {folder} is not the agreed {name} val images (records "
            "45,000..49,999 of the project's local copy, on which the zoo is measured), so "
            "its accuracy would not be comparable. Use that copy (shared/data/cifar10), or "
            "split='test'."
        )


def load_numpy(
    data_dir: str | os.PathLike, split: str, name: str = "cifar10"
) -> tuple[np.ndarray, np.ndarray]:
    """A split of a local folder: `x` uint8 (N, H, W, 3) and `y` int64 (N,).

    Args:
        data_dir: the local NumPy folder; it must hold data set `name` (see `describe`).
        split: one of `SPLITS`.
        name: the data set the folder must hold. Defaults to "cifar10".

    Raises:
        ValueError: an unknown split, a folder that holds another data set or does not
            say, or a CIFAR-10 `val` that is not the agreed images.
        FileNotFoundError: no training files, or no `test.npz` for the test split.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    folder = Path(data_dir)
    if split == "test":
        path = folder / "test.npz"
        if not path.is_file():
            raise FileNotFoundError(
                f"No test split in {folder} (looked for {path}). Use split='val', or "
                "load the official test split through tensorflow-datasets (data_dir=None, "
                f"{ENV_VAR} unset)."
            )
        x, y = _read((path,), (path.stat().st_mtime_ns,))
    else:
        x, y = _read_folder(folder)
        if split == "train":
            x, y = x[:TRAIN_SIZE], y[:TRAIN_SIZE]
        elif split == "val":
            if len(x) <= TRAIN_SIZE:
                raise ValueError(
                    f"{folder} has {len(x)} training records; val needs > {TRAIN_SIZE}."
                )
            x, y = x[TRAIN_SIZE:], y[TRAIN_SIZE:]
    _check_holds(folder, name, split)
    return x, y


def _read_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All training records of a local folder: its `train-<n>.npz` shards in order, else
    its `train-jpeg.npz`."""
    return _read(*_folder_files(folder))


def _folder_files(folder: Path) -> tuple[tuple[Path, ...], tuple[int, ...]]:
    """The training files of a local folder (see `_read_folder`) and their mtimes."""
    shards = [p for p in folder.glob("train-*.npz") if p.stem.split("-", 1)[1].isdigit()]
    files = sorted(shards, key=lambda p: int(p.stem.split("-", 1)[1]))
    if not files and (folder / "train-jpeg.npz").is_file():
        files = [folder / "train-jpeg.npz"]
    if not files:
        raise FileNotFoundError(
            f"No train-<n>.npz or train-jpeg.npz files in {folder}. Point data_dir (or "
            f"{ENV_VAR}) at a folder laid out like shared/data/cifar10, or leave both unset "
            "to use tensorflow-datasets."
        )
    return tuple(files), tuple(f.stat().st_mtime_ns for f in files)


@functools.lru_cache(maxsize=4)
def _folder_val_digest(files: tuple[Path, ...], mtimes: tuple[int, ...]) -> str | None:
    """`val_digest` of records 45,000.. of those files (None if there are none), hashed
    once per process and file version."""
    x, y = _read(files, mtimes)
    return val_digest(x[TRAIN_SIZE:], y[TRAIN_SIZE:]) if len(x) > TRAIN_SIZE else None


@functools.lru_cache(maxsize=2)
def _read(files: tuple[Path, ...], mtimes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and check shards once per process (keyed by path and mtime): the train and
    val splits of a run share one decompression."""
    del mtimes  # part of the cache key only
    xs, ys = [], []
    for f in files:
        with np.load(f) as arrays:
            if f.name == "train-jpeg.npz":
                x, y = _decode_jpegs(f, arrays)
            elif "x" not in arrays or "y" not in arrays:
                raise ValueError(f"{f} must hold arrays 'x' and 'y'; it has {list(arrays)}.")
            else:
                x, y = arrays["x"], arrays["y"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(
                f"{f}: 'x' must be uint8 of shape (N, H, W, 3) (RGB 0..255); got "
                f"{x.dtype} {x.shape}."
            )
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(
                f"{f}: 'y' must be integer labels of shape ({len(x)},); got {y.dtype} {y.shape}."
            )
        xs.append(x)
        ys.append(y.astype(np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _decode_jpegs(f: Path, arrays) -> tuple[np.ndarray, np.ndarray]:
    """`x` uint8 (N, H, W, 3) and `y` of a `train-jpeg.npz`: image k is the JPEG
    `jpeg[offsets[k]:offsets[k + 1]]`."""
    import io

    from PIL import Image

    if not {"jpeg", "offsets", "y"} <= set(arrays):
        raise ValueError(f"{f} must hold 'jpeg', 'offsets' and 'y'; it has {list(arrays)}.")
    data, offsets = arrays["jpeg"].tobytes(), arrays["offsets"]
    images = [
        np.asarray(Image.open(io.BytesIO(data[a:b])).convert("RGB"))
        for a, b in zip(offsets[:-1], offsets[1:])
    ]
    return np.stack(images), arrays["y"]
