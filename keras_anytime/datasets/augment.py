"""CIFAR augmentation of uint8 RGB images: pad 4 (zeros), random crop, random horizontal
flip, then optional Cutout; the same steps in NumPy (`augment_numpy`, on a batch) and in
TensorFlow (`augment_cifar`, on one image inside a `tf.data` pipeline)."""

from __future__ import annotations

import numpy as np

from keras_anytime.datasets.splits import CIFAR10_MEAN

__all__ = ["CUTOUT_FILL", "augment_cifar", "augment_numpy", "check_cutout"]

# Cutout (DeVries & Taylor 2017, arXiv 1708.04552) sets a square to the CIFAR-10 mean pixel,
# which the models' normalisation maps to zero, as in that paper (16 x 16 on CIFAR-10).
CUTOUT_FILL = CIFAR10_MEAN


def augment_numpy(images: np.ndarray, rng: np.random.Generator, cutout: int = 0) -> np.ndarray:
    """`augment_cifar` on a batch, in NumPy; each image draws its own crop, flip and square.

    Pad 4 (zeros), random crop, random horizontal flip, then Cutout.

    Args:
        images: a batch (B, H, W, C).
        rng: the random generator the crops, flips and squares are drawn from.
        cutout: side in pixels of the square set to `CUTOUT_FILL` (0: none). Default 0.

    Returns:
        The augmented batch, of the shape and dtype of `images`.
    """
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


def augment_cifar(image, label, cutout: int = 0):
    """Standard CIFAR augmentation of one image, in TensorFlow (`tf.data.Dataset.map`).

    Pad 4 (zeros), random crop, random horizontal flip, then Cutout.

    Args:
        image: a tensor (H, W, C).
        label: passed through unchanged.
        cutout: side in pixels of the square set to `CUTOUT_FILL` (0: none). Default 0.

    Returns:
        `(image, label)`, the image of the shape and dtype it came with.
    """
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


def check_cutout(cutout: int, augment: bool) -> None:
    """Raise `ValueError` unless `cutout` is a square side >= 0 that `augment` applies.

    Args:
        cutout: side in pixels of the Cutout square (0: none).
        augment: whether the pipeline augments; Cutout is part of the augmentation.
    """
    if not isinstance(cutout, int) or cutout < 0:
        raise ValueError(f"cutout must be a square side in pixels >= 0, got {cutout!r}.")
    if cutout and not augment:
        raise ValueError("cutout is part of the augmentation: set augment=True, or cutout=0.")
