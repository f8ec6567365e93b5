"""Data-parallel training over several devices with `keras.distribution` (JAX backend).

On JAX, Keras spreads training over a mesh of devices with `keras.distribution`; on
TensorFlow the package scales out with `tf.distribute` instead (`keras-anytime train
--strategy mirrored|multiworker`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

__all__ = ["use_data_parallel"]


def use_data_parallel(
    devices: int | Sequence[str] | None = None, batch_size: int | None = None
) -> keras.distribution.DataParallel:
    """Trains the models built from now on data-parallel over several devices (JAX only).

    Sets a `keras.distribution.DataParallel` over `devices` as Keras's global distribution
    and returns it. Each batch is split along its first axis across the devices, and the
    variables are replicated on every device: the weights, the optimizer's state and an
    `AnytimeModel`'s `exit_weighting` (AdaLoss's weights, loss averages and step count).
    A step computes the exits' losses, AdaLoss's update and the gradients over the whole
    batch, so it gives what one device gives on that batch, up to float rounding.

    Call it before building or loading the model: variables created earlier stay on one
    device, and the first training step then fails ("incompatible devices"). Every batch
    must split evenly over the devices, the last one of an epoch included: drop a partial
    last batch (`drop_remainder=True` in `tf.data`) or pick sizes that divide.
    `keras.distribution.set_distribution(None)` goes back to one device.

    Several hosts: call `keras.distribution.initialize(...)` in every process first; the
    devices are then those of all the hosts, and each process feeds its share of every
    batch (a `tf.data.Dataset` of global batches is sharded for it).

    Args:
        devices: the devices to train on. None (default): all the devices of the default
            type (the GPUs or TPUs, else the CPUs), of every host. An int n: the first n
            of those. A list of names as `keras.distribution.list_devices()` gives them,
            e.g. `["gpu:0", "gpu:1"]`.
        batch_size: the global batch size (over all devices), checked to divide by the
            number of devices. None (default): not checked.

    Returns:
        The `keras.distribution.DataParallel` now in use; its `device_mesh` holds the
        devices.

    Raises:
        ValueError: the Keras backend is not JAX.
        ValueError: `devices` names unknown or repeated devices or more devices than there
            are, or `batch_size` does not divide by the number of devices.

    Example:
        # KERAS_BACKEND=jax
        from keras_anytime.applications import AnytimeResNet
        from keras_anytime.callbacks import AdaLoss
        from keras_anytime.distribution import use_data_parallel

        use_data_parallel(batch_size=128)  # before the model is built
        model = AnytimeResNet(depth=20)
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=128, callbacks=[AdaLoss()])
    """
    backend = keras.config.backend()
    if backend != "jax":
        raise ValueError(
            f"use_data_parallel needs the JAX backend; Keras runs on {backend}. Set "
            "KERAS_BACKEND=jax before importing Keras, or on TensorFlow use tf.distribute "
            "(`keras-anytime train --strategy mirrored`)."
        )
    available = keras.distribution.list_devices()
    names = _chosen(devices, available)
    if batch_size is not None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if batch_size % len(names):
            raise ValueError(
                f"The batch size {batch_size} does not split evenly over {len(names)} "
                f"devices: use a multiple of {len(names)}, or fewer devices."
            )
    distribution = keras.distribution.DataParallel(devices=names)
    keras.distribution.set_distribution(distribution)
    return distribution


def _chosen(devices, available: list[str]) -> list[str]:
    """The device names that `devices` picks out of `available`."""
    if devices is None:
        return available
    if isinstance(devices, int) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"devices={devices}: there are {len(available)} devices ({available}); "
                f"ask for 1 to {len(available)}."
            )
        return available[:devices]
    if isinstance(devices, str) or not isinstance(devices, Sequence):
        raise ValueError(
            f"devices must be None, a device count or a list of device names, got {devices!r}."
        )
    names = [str(name) for name in devices]
    if not names:
        raise ValueError("devices is an empty list: name at least one, or pass None for all.")
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"Unknown devices {unknown}: the devices are {available}.")
    if len(set(names)) != len(names):
        raise ValueError(f"devices={names} names a device twice: list each device once.")
    return names
