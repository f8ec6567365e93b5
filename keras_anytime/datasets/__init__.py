"""Input pipelines: `tf.data.Dataset`s of `(image, label)` batches, images raw RGB 0..255.

Sources:
- `cifar10`, `cifar100`, `svhn` through `tensorflow-datasets` (downloaded by tfds);
- a local folder of NumPy files laid out like `shared/data/cifar10`, chosen by `data_dir`
  or by the environment variable `KERAS_ANYTIME_DATA` (`local`);
- `folder`: your own images in class folders, `data_dir/<split>/<class>/<image>`,
  through `tfds.ImageFolder` (`tfds`).

Splits: `train` (records 0..44,999), `val` (45,000..49,999), `train_full` (all 50,000)
and `test` (`splits`). A local folder says which data set it holds (`describe`); `load`
and `load_numpy` refuse a name it does not hold, and a CIFAR-10 `val` that is not the
agreed images (records 45,000..49,999 of the project's local copy, on which every zoo
figure is measured, so tfds's CIFAR-10 `val` is refused too).

Modules: `splits` (the record ranges, CIFAR-10's pixel statistics), `local` (a local
NumPy folder), `tfds` (the tensorflow-datasets sources), `augment` (pad-crop-flip and
Cutout, in NumPy and in TensorFlow), `numpy_batches` (`NumpyBatches`: a local folder's
arrays for `fit` on any backend, without TensorFlow) and `pipeline` (`load`).
"""

from keras_anytime.datasets.augment import CUTOUT_FILL, augment_cifar, augment_numpy
from keras_anytime.datasets.local import (
    AGREED_VAL_SHA256,
    DESCRIPTION_FILE,
    ENV_VAR,
    describe,
    load_numpy,
    local_dir,
    val_digest,
)
from keras_anytime.datasets.numpy_batches import NumpyBatches
from keras_anytime.datasets.pipeline import NAMES, load
from keras_anytime.datasets.splits import (
    CIFAR10_MEAN,
    CIFAR10_VARIANCE,
    SPLIT_RECORDS,
    SPLITS,
    TRAIN_SIZE,
)
from keras_anytime.datasets.tfds import TFDS_NAMES, TFDS_SPLITS

__all__ = [
    "AGREED_VAL_SHA256",
    "CIFAR10_MEAN",
    "CIFAR10_VARIANCE",
    "CUTOUT_FILL",
    "DESCRIPTION_FILE",
    "ENV_VAR",
    "NAMES",
    "SPLITS",
    "SPLIT_RECORDS",
    "TFDS_NAMES",
    "TFDS_SPLITS",
    "TRAIN_SIZE",
    "NumpyBatches",
    "augment_cifar",
    "augment_numpy",
    "describe",
    "load",
    "load_numpy",
    "local_dir",
    "val_digest",
]
