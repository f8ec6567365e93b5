"""The precision and XLA choice of a run, from what the machine has."""

import keras
import pytest

from keras_anytime import hardware, recipes


def test_precision_auto_is_bfloat16_on_a_gpu_or_a_cpu_with_native_bfloat16(monkeypatch):
    for gpu, native, expected in [
        (False, False, "float32"),
        (False, True, "bfloat16"),
        (True, False, "bfloat16"),
    ]:
        monkeypatch.setattr(hardware, "has_gpu", lambda backend, gpu=gpu: gpu)
        monkeypatch.setattr(hardware, "cpu_has_bfloat16", lambda native=native: native)
        assert hardware.resolve_precision("auto") == expected
    assert hardware.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="Unknown precision 'half'"):
        hardware.resolve_precision("half")


def test_jit_compile_auto_is_xla_for_float32_on_a_tensorflow_cpu(monkeypatch):
    monkeypatch.setattr(hardware, "has_gpu", lambda backend: False)
    monkeypatch.setattr(keras.config, "backend", lambda: "tensorflow")
    assert hardware.resolve_jit_compile("auto", "float32") is True
    assert hardware.resolve_jit_compile("auto", "bfloat16") is False
    assert hardware.resolve_jit_compile("off", "float32") is False
    assert hardware.resolve_jit_compile("on", "bfloat16") is True
    monkeypatch.setattr(hardware, "has_gpu", lambda backend: True)
    assert hardware.resolve_jit_compile("auto", "bfloat16") is True
    monkeypatch.setattr(keras.config, "backend", lambda: "torch")  # never torch.compile
    assert hardware.resolve_jit_compile("auto", "float32") is False
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    assert hardware.resolve_jit_compile("auto", "bfloat16") is True
    with pytest.raises(ValueError, match="Unknown jit_compile 'yes'"):
        hardware.resolve_jit_compile("yes", "float32")


def test_set_mixed_precision_sets_the_global_policy():
    hardware.set_mixed_precision(True)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    hardware.set_mixed_precision(False)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_recipes_hands_on_the_hardware_names():
    names = [
        "JIT_COMPILES",
        "PRECISIONS",
        "cpu_has_bfloat16",
        "has_gpu",
        "resolve_jit_compile",
        "resolve_precision",
        "set_mixed_precision",
    ]
    assert sorted(hardware.__all__) == names
    assert all(getattr(recipes, name) is getattr(hardware, name) for name in names)
