"""The package's public names: each public module lists its own in `__all__`, and
`import keras_anytime` hands on the names a user needs while loading only what
`keras.saving.load_model` needs."""

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import keras_anytime

PACKAGE = Path(keras_anytime.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PUBLIC_MODULES = sorted(
    name
    for name in map(_module_name, PACKAGE.rglob("*.py"))
    if not any(part.startswith("_") for part in name.split("."))
)


def _public_definitions(source: str) -> set[str]:
    """The names a module's top level defines (functions, classes, assignments) without a
    leading underscore."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def test_the_checker_sees_public_definitions():
    source = "import os\nA = 1\n_B = 2\nx: int = 3\ndef f(): pass\nclass C: pass\ndef _g(): pass\n"
    assert _public_definitions(source) == {"A", "x", "f", "C"}


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_lists_its_public_names(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    listed = module.__all__
    assert len(set(listed)) == len(listed), f"{name}.__all__ names a name twice"
    assert [n for n in listed if not hasattr(module, n)] == []
    defined = _public_definitions(Path(module.__file__).read_text())
    assert sorted(defined - set(listed)) == [], f"public in {name} but not in its __all__"


def test_import_loads_only_what_load_model_needs():
    code = (
        "import json, sys, keras, keras_anytime\n"
        "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith("
        "'keras_anytime')), 'registered': [keras.saving.get_registered_object(n) is not None "
        "for n in ('keras_anytime>AnytimeModel', 'keras_anytime>RunAfter', "
        "'keras_anytime>BatchNormalization', 'keras_anytime>SparseCategoricalCrossentropy')]}))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    ran = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    found = json.loads(ran.stdout.splitlines()[-1])
    assert found["modules"] == [
        "keras_anytime",
        "keras_anytime._tf_distribute",
        "keras_anytime.layers",
        "keras_anytime.losses",
        "keras_anytime.models",
    ]
    assert found["registered"] == [True] * 4


def test_the_top_level_names_are_those_of_their_modules():
    from keras_anytime import applications, callbacks, flops, inference, training

    assert keras_anytime.AnytimeResNet is applications.AnytimeResNet
    assert keras_anytime.AdaLoss is callbacks.AdaLoss
    assert keras_anytime.EarlyExitPredictor is inference.EarlyExitPredictor
    assert keras_anytime.exit_flops is flops.exit_flops
    assert keras_anytime.TrainConfig is training.TrainConfig
    assert keras_anytime.train is training.train
    assert keras_anytime.zoo is importlib.import_module("keras_anytime.zoo")
    for name, module in keras_anytime._NAMES.items():
        held = getattr(importlib.import_module(f"keras_anytime.{module}"), name)
        assert getattr(keras_anytime, name) is held, name
    assert set(keras_anytime.__all__) <= set(dir(keras_anytime))
    with pytest.raises(AttributeError, match="no attribute 'AnytimeResNet7'"):
        keras_anytime.AnytimeResNet7  # noqa: B018


def test_every_public_submodule_is_an_attribute_of_the_package():
    top = {name.split(".")[1] for name in PUBLIC_MODULES if name.count(".") >= 1}
    assert top - {"cli"} <= set(keras_anytime.__all__)
