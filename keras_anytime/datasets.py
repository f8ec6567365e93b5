"""Input pipelines: `tf.data.Dataset`s of `(image, label)` batches, images raw RGB 0..255.

Sources:
- `cifar10`, `cifar100`, `svhn` through `tensorflow-datasets` (downloaded by tfds);
- a local folder of NumPy files laid out like `shared/data/cifar10` (`train-*.npz` with
  `x` uint8 (N, H, W, 3) and `y` (N,), optional `test.npz`), chosen by `data_dir` or by
  the environment variable `KERAS_ANYTIME_DATA`;
- `folder`: your own images in class folders, `data_dir/<split>/<class>/<image>`,
  through `tfds.ImageFolder` (all images of one size; labels are the class folders in
  sorted order).

Splits: `train` (records 0..44,999), `val` (45,000..49,999), `train_full` (all 50,000)
and `test`. With tfds the same record ranges are taken from its `train` split.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}
NAMES = (*TFDS_NAMES, "folder")
SPLITS = ("train", "val", "train_full", "test")
TRAIN_SIZE = 45_000  # records 0..44,999; val is 45,000..49,999
TFDS_SPLITS = {
    "train": f"train[:{TRAIN_SIZE}]",
    "val": f"train[{TRAIN_SIZE}:50000]",
    "train_full": "train",
    "test": "test",
}
ENV_VAR = "KERAS_ANYTIME_DATA"


def local_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local NumPy folder to read: `data_dir`, else $KERAS_ANYTIME_DATA, else None."""
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    return Path(chosen) if chosen else None


def load_numpy(data_dir: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Arrays `x` uint8 (N, H, W, 3) and `y` int64 (N,) of a split of a local folder."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {SPLITS}.")
    folder = Path(data_dir)
    if split == "test":
        files = [folder / "test.npz"]
        if not files[0].is_file():
            raise FileNotFoundError(
                f"No test split in {folder} (looked for {files[0]}). Use split='val', or "
                "load the official test split through tensorflow-datasets (data_dir=None, "
                f"{ENV_VAR} unset)."
            )
    else:
        shards = [p for p in folder.glob("train-*.npz") if p.stem.split("-", 1)[1].isdigit()]
        files = sorted(shards, key=lambda p: int(p.stem.split("-", 1)[1]))
        if not files:
            raise FileNotFoundError(
                f"No train-<n>.npz files in {folder}. Point data_dir (or {ENV_VAR}) at a folder "
                "laid out like shared/data/cifar10, or leave both unset to use "
                "tensorflow-datasets."
            )
    x, y = _read(tuple(files), tuple(f.stat().st_mtime_ns for f in files))
    if split == "train":
        return x[:TRAIN_SIZE], y[:TRAIN_SIZE]
    if split == "val":
        if len(x) <= TRAIN_SIZE:
            raise ValueError(f"{folder} has {len(x)} training records; val needs > {TRAIN_SIZE}.")
        return x[TRAIN_SIZE:], y[TRAIN_SIZE:]
    return x, y


@functools.lru_cache(maxsize=2)
def _read(files: tuple[Path, ...], mtimes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and check shards once per process (keyed by path and mtime): the train and
    val splits of a run share one decompression."""
    del mtimes  # part of the cache key only
    xs, ys = [], []
    for f in files:
        with np.load(f) as arrays:
            if "x" not in arrays or "y" not in arrays:
                raise ValueError(f"{f} must hold arrays 'x' and 'y'; it has {list(arrays)}.")
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


def augment_cifar(image, label):
    """Standard CIFAR augmentation on one image: pad 4 (zeros), random crop, random flip."""
    import tensorflow as tf

    size = tf.shape(image)
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
    image = tf.ensure_shape(tf.image.random_crop(padded, size), image.shape)
    return tf.image.random_flip_left_right(image), label


def load(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 128,
    augment: bool | None = None,
    shuffle: bool | None = None,
    seed: int | None = None,
):
    """A `tf.data.Dataset` of `(images, labels)` batches: float32 (B, H, W, 3) in 0..255
    and int64 (B,).

    `augment` and `shuffle` default to True for the training splits and False otherwise.
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
        x, y = load_numpy(folder, split)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        size = len(x)
    else:
        import tensorflow_datasets as tfds

        ds = tfds.load(
            TFDS_NAMES[name], split=TFDS_SPLITS[split], as_supervised=True, shuffle_files=shuffle
        )
        ds = ds.cache()
        size = None
    if shuffle:
        ds = ds.shuffle(size or 50_000, seed=seed, reshuffle_each_iteration=True)
    if augment:
        ds = ds.map(augment_cifar, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(
        lambda images, labels: (tf.cast(images, tf.float32), tf.cast(labels, tf.int64)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
