"""The agreed splits, the same records whatever the source, and the pixel statistics of
CIFAR-10's `train` split."""

from __future__ import annotations

__all__ = ["CIFAR10_MEAN", "CIFAR10_VARIANCE", "SPLITS", "SPLIT_RECORDS", "TRAIN_SIZE"]

# Per-channel RGB mean and variance (0..255) of CIFAR-10's `train` split (records 0..44,999
# of the local copy), computed with NumPy; the builders normalise with them. The official
# images give (125.3, 123.0, 113.9) / (63.0, 62.1, 66.7)**2.
CIFAR10_MEAN = (125.3156, 122.9370, 113.8772)
CIFAR10_VARIANCE = (3915.379, 3840.356, 4423.586)
SPLITS = ("train", "val", "train_full", "test")
TRAIN_SIZE = 45_000  # records 0..44,999; val is 45,000..49,999
SPLIT_RECORDS = {
    "train": "records 0..44,999",
    "val": "records 45,000..49,999",
    "train_full": "records 0..49,999",
    "test": "the test split",
}
