"""Input pipelines: `tf.data.Dataset`s of `(image, label)` batches, images raw RGB 0..255.

Sources:
- `cifar10`, `cifar100`, `svhn` through `tensorflow-datasets` (downloaded by tfds);
- a local folder of NumPy files laid out like `shared/data/cifar10` (`train-*.npz` with
  `x` uint8 (N, H, W, 3) and `y` (N,), or else `train-jpeg.npz` with the JPEG bytes
  `jpeg`, `offsets` (N + 1,) and `y`, decoded with Pillow; optional `test.npz`), chosen
  by `data_dir` or by the environment variable `KERAS_ANYTIME_DATA`;
- `folder`: your own images in class folders, `data_dir/<split>/<class>/<image>`,
  through `tfds.ImageFolder` (all images of one size; labels are the class folders in
  sorted order).

Splits: `train` (records 0..44,999), `val` (45,000..49,999), `train_full` (all 50,000)
and `test`. With tfds the same record ranges are taken from its `train` split, except
CIFAR-10's `val`: the agreed `val` (every figure of the zoo) is records 45,000..49,999 of
the local copy, other images than tfds's `train[45000:50000]`, so tfds refuses it.

A local folder says what it holds: a `dataset.json` (`{"name": "cifar10"}`; optional
`"val_sha256"`, the `val_digest` of its val split), or, without one, the val images of the
project's CIFAR-10 copy (`AGREED_VAL_SHA256`), which mark it as `cifar10`. `load` and
`load_numpy` refuse a name the folder does not hold, and a CIFAR-10 `val` that is not the
agreed images.

`NumpyBatches` serves a local folder's arrays to `fit` on any Keras backend, without
TensorFlow (the JAX backend on a GPU machine that has no TensorFlow).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

import keras
import numpy as np

# Per-channel RGB mean and variance (0..255) of CIFAR-10's `train` split (records 0..44,999
# of the local copy), measured with NumPy; the builders normalise with them. The official
# images give (125.3, 123.0, 113.9) / (63.0, 62.1, 66.7)**2.
CIFAR10_MEAN = (125.3156, 122.9370, 113.8772)
CIFAR10_VARIANCE = (3915.379, 3840.356, 4423.586)
TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}
NAMES = (*TFDS_NAMES, "folder")
SPLITS = ("train", "val", "train_full", "test")
TRAIN_SIZE = 45_000  # records 0..44,999; val is 45,000..49,999
SPLIT_RECORDS = {
    "train": "records 0..44,999",
    "val": "records 45,000..49,999",
    "train_full": "records 0..49,999",
    "test": "the test split",
}
TFDS_SPLITS = {
    "train": f"train[:{TRAIN_SIZE}]",
    "val": f"train[{TRAIN_SIZE}:50000]",
    "train_full": "train",
    "test": "test",
}
ENV_VAR = "KERAS_ANYTIME_DATA"
DESCRIPTION_FILE = "dataset.json"
# `val_digest` of the agreed CIFAR-10 val split: records 45,000..49,999 of the project's
# JPEG-decoded local copy (shared/data/cifar10), on which every zoo figure is measured.
AGREED_VAL_SHA256 = {"cifar10": "2bcdacd77e94237c886afb31b932c039648e8a2202ad62f90ebc84b8201504ff"}
# Cutout (DeVries & Taylor 2017, arXiv 1708.04552) sets a square to the CIFAR-10 mean pixel,
# which the models' normalisation maps to zero, as in that paper (16 x 16 on CIFAR-10).
CUTOUT_FILL = CIFAR10_MEAN


def local_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local NumPy folder to read: `data_dir`, else $KERAS_ANYTIME_DATA, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else None


def val_digest(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of a split's images (uint8 bytes, NHWC) followed by its labels (as uint8)."""
    h = hashlib.sha256(np.ascontiguousarray(x, dtype=np.uint8).tobytes())
    h.update(np.asarray(y).astype(np.uint8).tobytes())
    return h.hexdigest()


def describe(data_dir: str | os.PathLike) -> dict:
    """What a local folder holds: `{"name": ..., "val_sha256": ...}` from its
    `dataset.json`; without one, `{"name": "cifar10", ...}` when its val split is the
    agreed CIFAR-10 val images, else `{"name": None}` (the folder does not say)."""
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
    """Arrays `x` uint8 (N, H, W, 3) and `y` int64 (N,) of a split of a local folder that
    holds data set `name` (see `describe`)."""
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


def augment_numpy(images: np.ndarray, rng: np.random.Generator, cutout: int = 0) -> np.ndarray:
    """`augment_cifar` on a batch (B, H, W, C), in NumPy: pad 4 (zeros), random crop,
    random horizontal flip, then `cutout` (0: none)."""
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    rows = rng.integers(0, 9, b)[:, None] + np.arange(h)  # (B, H)
    cols = rng.integers(0, 9, b)[:, None] + np.arange(w)  # (B, W)
    cols = np.where(rng.random(b)[:, None] < 0.5, cols[:, ::-1], cols)
    images = padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if not cutout:
        return images
    top = rng.integers(0, h, b)[:, None] - cutout // 2  # (B, 1), the square's first row
    left = rng.integers(0, w, b)[:, None] - cutout // 2
    in_rows = (np.arange(h) >= top) & (np.arange(h) < top + cutout)  # (B, H)
    in_cols = (np.arange(w) >= left) & (np.arange(w) < left + cutout)  # (B, W)
    square = in_rows[:, :, None, None] & in_cols[:, None, :, None]  # (B, H, W, 1)
    return np.where(square, np.round(CUTOUT_FILL).astype(images.dtype), images)


class NumpyBatches(keras.utils.PyDataset):
    """`(images, labels)` batches of `x` uint8 (N, H, W, 3) and `y` (N,) for `fit` and
    `evaluate` on any backend, without TensorFlow: float32 images in 0..255, int64 labels.

    With `shuffle` the order is drawn anew each epoch and the last partial batch is
    dropped; `augment` applies `augment_numpy` (with `cutout`).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int = 128,
        augment: bool = False,
        shuffle: bool = False,
        seed: int | None = None,
        cutout: int = 0,
    ):
        super().__init__()
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels.")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        _check_cutout(cutout, augment)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.augment, self.shuffle, self.cutout = augment, shuffle, cutout
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.shuffle else -(-n // self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(f"batch {i} of {len(self)}")
        rows = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        images = self.x[rows]
        if self.augment:
            images = augment_numpy(images, self.rng, self.cutout)
        return images.astype(np.float32), self.y[rows].astype(np.int64)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.x))


def augment_cifar(image, label, cutout: int = 0):
    """Standard CIFAR augmentation on one image: pad 4 (zeros), random crop, random flip,
    then `cutout` (0: none)."""
    import tensorflow as tf

    size = tf.shape(image)
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.ensure_shape(tf.image.random_crop(padded, size), image.shape)
    image = tf.image.random_flip_left_right(image)
    if not cutout:
        return image, label
    top = tf.random.uniform([], 0, size[0], tf.int32) - cutout // 2
    left = tf.random.uniform([], 0, size[1], tf.int32) - cutout // 2
    in_rows = (tf.range(size[0]) >= top) & (tf.range(size[0]) < top + cutout)  # (H,)
    in_cols = (tf.range(size[1]) >= left) & (tf.range(size[1]) < left + cutout)  # (W,)
    square = in_rows[:, None, None] & in_cols[None, :, None]  # (H, W, 1)
    fill = tf.cast(tf.round(tf.constant(CUTOUT_FILL)), image.dtype)
    return tf.where(square, fill, image), label


def _check_cutout(cutout: int, augment: bool) -> None:
    if not isinstance(cutout, int) or cutout < 0:
        raise ValueError(f"cutout must be a square side in pixels >= 0, got {cutout!r}.")
    if cutout and not augment:
        raise ValueError("cutout is part of the augmentation: set augment=True, or cutout=0.")


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    augment: bool | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
    cutout: int = 0,
):
    """A `tf.data.Dataset` of `(images, labels)` batches: float32 (B, H, W, 3) in 0..255
    and int64 (B,).

    `augment` and `shuffle` default to True for the training splits and False otherwise;
    `cutout` (pixels, 0: none) adds Cutout to the augmentation (see `CUTOUT_FILL`).
    The local NumPy folder (`data_dir` or $KERAS_ANYTIME_DATA) is used when given;
    otherwise tfds loads `name` (downloading it the first time).
    """
    import tensorflow as tf

    if name not in NAMES:
        raise ValueError(f"Unknown dataset {name!r}: use one of {NAMES}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    training = split in ("train", "train_full")
    augment = training if augment is None else augment
    shuffle = training if shuffle is None else shuffle
    _check_cutout(cutout, augment)

    folder = local_dir(data_dir)
    if name == "folder":
        import tensorflow_datasets as tfds

        if folder is None:
            raise ValueError("name='folder' needs data_dir: a folder of <split>/<class>/<image>.")
        builder = tfds.ImageFolder(str(folder))
        ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle)
        size = builder.info.splits[split].num_examples
    elif folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(
                f"Data folder {folder} does not exist (from "
                f"{'data_dir' if data_dir is not None else ENV_VAR}). Set it to a folder "
                "laid out like shared/data/cifar10, or unset it to use tensorflow-datasets."
            )
        x, y = load_numpy(folder, split, name)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        size = len(x)
    else:
        if split == "val" and name in AGREED_VAL_SHA256:
            raise ValueError(
                f"tensorflow-datasets' {name} train[{TRAIN_SIZE}:50000] holds other images "
                f"than the agreed {name} val split (records 45,000..49,999 of the project's "
                "local copy, on which the zoo is measured). Set data_dir (or "
                f"{ENV_VAR}) to that copy (shared/data/cifar10), or use split='test'."
            )
        import tensorflow_datasets as tfds

        ds = tfds.load(
            TFDS_NAMES[name], split=TFDS_SPLITS[split], as_supervised=True, shuffle_files=shuffle
        )
        ds = ds.cache()
        size = None
    if shuffle:
        ds = ds.shuffle(size or 50_000, seed=seed, reshuffle_each_iteration=True)
    if augment:
        ds = ds.map(
            lambda image, label: augment_cifar(image, label, cutout),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(
        lambda images, labels: (tf.cast(images, tf.float32), tf.cast(labels, tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
