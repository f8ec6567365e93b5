"""What this machine computes well, and the training precision and XLA setting that follow:
`resolve_precision` and `resolve_jit_compile` turn a run's "auto" into a choice, from
`has_gpu` and `cpu_has_bfloat16`; `set_mixed_precision` applies the precision."""

from __future__ import annotations

import keras

__all__ = [
    "JIT_COMPILES",
    "PRECISIONS",
    "cpu_has_bfloat16",
    "has_gpu",
    "resolve_jit_compile",
    "resolve_precision",
    "set_mixed_precision",
]

PRECISIONS = ("auto", "bfloat16", "float32")
JIT_COMPILES = ("auto", "on", "off")


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16).

    Read from the Linux `/proc/cpuinfo` flags; False where there are none to read.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def has_gpu(backend: str) -> bool:
    """Whether `backend` sees a GPU.

    Args:
        backend: "tensorflow", "jax" or "torch"; any other name sees none.
    """
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def resolve_precision(precision: str) -> str:
    """The training precision, "bfloat16" (the `mixed_bfloat16` policy) or "float32".

    "auto" is bfloat16 on a GPU or on a CPU with native bfloat16, where mixed_bfloat16
    trains faster than float32, else float32: CPUs without it emulate bfloat16 slowly
    (benchmarks/README.md, "Training throughput against plain PyTorch").

    Args:
        precision: one of `PRECISIONS`: "auto", "bfloat16" or "float32".

    Raises:
        ValueError: `precision` is not one of `PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}: use one of {PRECISIONS}.")
    if precision != "auto":
        return precision
    gpu = has_gpu(keras.config.backend())
    return "bfloat16" if gpu or cpu_has_bfloat16() else "float32"


def resolve_jit_compile(jit_compile: str, precision: str) -> bool:
    """Whether `Model.compile` should use XLA (`jit_compile`).

    "auto" is Keras's own choice (XLA under JAX and on a TensorFlow GPU, never
    `torch.compile`) plus XLA for float32 on a TensorFlow CPU, where XLA trains float32
    faster than TensorFlow's graph mode but mixed_bfloat16 slower (benchmarks/README.md,
    "Training throughput against plain PyTorch").

    Args:
        jit_compile: one of `JIT_COMPILES`: "auto", "on" or "off".
        precision: the resolved precision, "bfloat16" or "float32" (`resolve_precision`).

    Raises:
        ValueError: `jit_compile` is not one of `JIT_COMPILES`.
    """
    if jit_compile not in JIT_COMPILES:
        raise ValueError(f"Unknown jit_compile {jit_compile!r}: use one of {JIT_COMPILES}.")
    if jit_compile != "auto":
        return jit_compile == "on"
    backend = keras.config.backend()
    if backend == "tensorflow":
        return precision == "float32" or has_gpu(backend)
    return backend == "jax"


def set_mixed_precision(enabled: bool) -> None:
    """Set Keras's global dtype policy; call before building the model.

    Args:
        enabled: True: `mixed_bfloat16` (the exits' Dense layers stay float32); False:
            float32.
    """
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if enabled else "float32")
