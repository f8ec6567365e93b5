"""`load`: a `tf.data` pipeline of `(images, labels)` batches from any of the sources: the
tensorflow-datasets catalogue, a local NumPy folder, or class folders."""

from __future__ import annotations

import os

from keras_anytime.datasets.augment import augment_cifar, check_cutout
from keras_anytime.datasets.local import ENV_VAR, load_numpy, local_dir
from keras_anytime.datasets.splits import SPLITS
from keras_anytime.datasets.tfds import TFDS_NAMES, catalog_dataset, image_folder_dataset

__all__ = ["NAMES", "load"]

NAMES = (*TFDS_NAMES, "folder")


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
    """A `tf.data.Dataset` of `(images, labels)` batches: float32 (B, H, W, 3), int64 (B,).

    The images are raw, 0..255. The local NumPy folder (`data_dir` or $KERAS_ANYTIME_DATA)
    is used when given; otherwise tfds loads `name` (downloading it the first time).

    Args:
        name: one of `NAMES`; "folder" reads `data_dir/<split>/<class>/<image>`.
        split: one of `SPLITS`; for "folder", the split folder of that name.
        data_dir: a local NumPy folder, or the folder of class folders for "folder";
            None: $KERAS_ANYTIME_DATA, else tensorflow-datasets. Default None.
        batch_size: images per batch; the training splits drop the last partial batch.
            Default 128.
        augment: whether to apply `augment_cifar`; None: for the training splits
            ("train", "train_full"). Default None.
        shuffle: whether to shuffle anew each epoch; None: for the training splits.
            Default None.
        seed: the shuffle's seed; None: fresh entropy. Default None.
        cutout: side in pixels of a Cutout square added to the augmentation (0: none; see
            `CUTOUT_FILL`). Default 0.

    Raises:
        ValueError: an unknown name or split, a batch size below 1, a Cutout without
            augmentation, or a local folder that does not hold `name`.
        FileNotFoundError: a local folder that does not exist.

    Example:

    ```python
    train = keras_anytime.datasets.load("cifar10", "train", data_dir="data/cifar10")
    val = keras_anytime.datasets.load("cifar10", "val", data_dir="data/cifar10")
    model.fit(train, validation_data=val, epochs=2)
    ```
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
    check_cutout(cutout, augment)

    folder = local_dir(data_dir)
    if name == "folder":
        if folder is None:
            raise ValueError("name='folder' needs data_dir: a folder of <split>/<class>/<image>.")
        ds, size = image_folder_dataset(folder, split, shuffle)
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
        ds, size = catalog_dataset(name, split, shuffle), None
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
