"""The sources read through `tensorflow-datasets`: its catalogue's `cifar10`, `cifar100` and
`svhn` (downloaded the first time), and your own images in class folders.

The catalogue's splits take the agreed record ranges from its `train` split, except
CIFAR-10's `val`: the agreed `val` (every figure of the zoo) is records 45,000..49,999 of
the local copy, other images than tfds's `train[45000:50000]`, so it is refused here.
"""

from __future__ import annotations

from pathlib import Path

from keras_anytime.datasets.local import AGREED_VAL_SHA256, ENV_VAR
from keras_anytime.datasets.splits import TRAIN_SIZE

__all__ = ["TFDS_NAMES", "TFDS_SPLITS", "catalog_dataset", "image_folder_dataset"]

TFDS_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "svhn": "svhn_cropped"}
TFDS_SPLITS = {
    "train": f"train[:{TRAIN_SIZE}]",
    "val": f"train[{TRAIN_SIZE}:50000]",
    "train_full": "train",
    "test": "test",
}


def catalog_dataset(name: str, split: str, shuffle: bool):
    """A cached `tf.data.Dataset` of `(image, label)` records from the tfds catalogue.

    The data set is downloaded the first time.

    Args:
        name: a key of `TFDS_NAMES`.
        split: a key of `TFDS_SPLITS`; not "val" for a data set of `AGREED_VAL_SHA256`.
        shuffle: whether tfds shuffles the order of its files.

    Raises:
        ValueError: CIFAR-10's `val`, which tfds holds other images of.
    """
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
    return ds.cache()


def image_folder_dataset(folder: Path, split: str, shuffle: bool):
    """`(dataset, size)`: the `(image, label)` records of a folder of class folders.

    Read through `tfds.ImageFolder` from `folder/<split>/<class>/<image>`. All images must
    have one size; the labels are the class folders in sorted order.

    Args:
        folder: the folder of splits.
        split: the split's folder name.
        shuffle: whether tfds shuffles the order of its files.
    """
    import tensorflow_datasets as tfds

    builder = tfds.ImageFolder(str(folder))
    ds = builder.as_dataset(split=split, as_supervised=True, shuffle_files=shuffle)
    return ds, builder.info.splits[split].num_examples
