"""`NumpyBatches`: a local folder's arrays served to `fit` on any Keras backend, without
TensorFlow (the JAX backend on a GPU machine that has no TensorFlow)."""

from __future__ import annotations

import keras
import numpy as np

from keras_anytime.datasets.augment import augment_numpy, check_cutout

__all__ = ["NumpyBatches"]


class NumpyBatches(keras.utils.PyDataset):
    """`(images, labels)` batches of NumPy arrays for `fit` and `evaluate` on any backend.

    No TensorFlow: the batches are float32 images in 0..255 and int64 labels.

    Args:
        x: uint8 images (N, H, W, 3), RGB 0..255, e.g. from `load_numpy`.
        y: integer labels (N,).
        batch_size: images per batch. Default 128.
        augment: whether to apply `augment_numpy` to each batch. Default False.
        shuffle: whether to draw the order anew each epoch and drop the last partial
            batch. Default False.
        seed: seed of the order and of the augmentation; None: fresh entropy. Default None.
        cutout: side in pixels of the Cutout square (0: none; needs `augment`). Default 0.

    Raises:
        ValueError: `x` and `y` of different lengths, a batch size below 1, or a Cutout
            without `augment`.
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
        check_cutout(cutout, augment)
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
