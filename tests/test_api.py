"""The package's public names: each public module lists its own in `__all__`, and
`import keras_anytime` hands on the names a user needs while loading only what
`keras.saving.load_model` needs. Every public module has a docstring, and the public
functions and classes have a one-line summary and document their arguments."""

import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import types
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


@pytest.mark.slow
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


# An `Args:` entry: `name: ...` or `name (type): ...`, at the section's first indentation.
_ENTRY = re.compile(r"\*{0,2}(\w+)(?: \([^)]*\))?:")


def _argument_entries(doc: str) -> set[str]:
    """The names that a Google-style docstring's `Args:` section has an entry for."""
    names, section, indent = set(), None, None
    for line in inspect.cleandoc(doc).splitlines():
        depth = len(line) - len(line.lstrip())
        if line.strip() == "Args:":
            section, indent = depth, None
        elif section is not None and line.strip():
            if depth <= section:
                section = None
                continue
            indent = depth if indent is None else indent
            entry = _ENTRY.match(line.strip())
            if depth == indent and entry:
                names.add(entry.group(1))
    return names


def _arguments(function) -> list[str]:
    """The arguments a docstring must document: all but self, cls, *args and **kwargs."""
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _definitions(modules, package: str) -> dict[str, tuple[str, list[str]]]:
    """{qualified name: (docstring, arguments to document)} of every function and class
    that the modules' `__all__` name and `package` defines, and of the public methods of
    those classes. A class documents its own constructor's arguments (in its docstring or
    the constructor's); a method that overrides one of a base class from elsewhere (a Keras
    override such as `call`, `get_config` or `on_epoch_end`) is documented there."""

    def own(obj) -> bool:
        return (getattr(obj, "__module__", None) or "").split(".")[0] == package

    found = {}
    for module in modules:
        for obj in (getattr(module, n) for n in module.__all__):
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or not own(obj):
                continue
            name = f"{obj.__module__}.{obj.__qualname__}"
            if inspect.isfunction(obj):
                found[name] = (obj.__doc__ or "", _arguments(obj))
                continue
            init = obj.__init__
            init = init if inspect.isfunction(init) and own(init) else None
            docs = (obj.__doc__, getattr(init, "__doc__", None))
            doc = "\n\n".join(inspect.cleandoc(d) for d in docs if d)
            found[name] = (doc, _arguments(init) if init else [])
            for attribute, value in vars(obj).items():
                method = getattr(value, "__func__", value)  # staticmethod, classmethod
                foreign = [b for b in obj.__mro__[1:] if not own(b) and hasattr(b, attribute)]
                if attribute.startswith("_") or not inspect.isfunction(method) or foreign:
                    continue
                found[f"{name}.{attribute}"] = (method.__doc__ or "", _arguments(method))
    return found


def _args_coverage(definitions: dict) -> tuple[float, list[str]]:
    """The share of the definitions that take arguments whose docstring has an `Args:`
    entry for every one, and the names of the others with the arguments they leave out."""
    taking = {name: d for name, d in definitions.items() if d[1]}
    missing = [
        f"{name} {[a for a in arguments if a not in _argument_entries(doc)]}"
        for name, (doc, arguments) in sorted(taking.items())
        if not set(arguments) <= _argument_entries(doc)
    ]
    return 1 - len(missing) / max(len(taking), 1), missing


def _without_summary(definitions: dict) -> list[str]:
    """The definitions whose docstring does not open with a one-line summary (a line of
    its own, then a blank line or nothing)."""
    bad = []
    for name, (doc, _) in sorted(definitions.items()):
        lines = inspect.cleandoc(doc).splitlines()
        if not lines or not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
            bad.append(name)
    return bad


def _without_docstring(modules) -> list[str]:
    return sorted(m.__name__ for m in modules if not (m.__doc__ or "").strip())


class _Base:
    def on_epoch_end(self, epoch, logs=None):
        """A base class from outside the package documents its own methods."""


_FAKE = '''
__all__ = ["documented", "undocumented", "partly", "no_arguments", "kwargs_only",
           "two_line_summary", "Tool", "Callback", "Base", "LIMIT"]
LIMIT = 3

def documented(a, b=1):
    """Add.

    Args:
        a: the first.
        b (int): the second. Defaults to 1.
    """

def undocumented(a):
    """No Args section."""

def partly(a, b):
    """Half.

    Args:
        a: only a; b is named here, but has no entry.

    Returns:
        b: not an argument entry.
    """

def no_arguments():
    """Nothing to document."""

def kwargs_only(*args, **kwargs):
    """Its arguments are another function's."""

def two_line_summary():
    """A summary that goes on
    to a second line."""

class Tool:
    """A tool.

    Args:
        size: its size.
    """

    def __init__(self, size):
        self.size = size

    def use(self, times):
        """Use it, its argument undocumented."""

    @property
    def area(self):
        return self.size**2

class Callback(Base):
    def on_epoch_end(self, epoch, logs=None):
        pass
'''


def _fake_module(source: str, doc: str | None = "A fake module.") -> types.ModuleType:
    module = types.ModuleType("fakepackage.tools", doc)
    module.Base = _Base
    exec(source, module.__dict__)
    return module


def test_the_docstring_checkers_catch_what_is_missing():
    definitions = _definitions([_fake_module(_FAKE)], "fakepackage")
    assert set(definitions) == {
        f"fakepackage.tools.{name}"
        for name in (
            "documented",
            "undocumented",
            "partly",
            "no_arguments",
            "kwargs_only",
            "two_line_summary",
            "Tool",
            "Tool.use",
            "Callback",
        )
    }
    share, missing = _args_coverage(definitions)
    assert missing == [
        "fakepackage.tools.Tool.use ['times']",
        "fakepackage.tools.partly ['b']",
        "fakepackage.tools.undocumented ['a']",
    ]
    assert share == 2 / 5  # documented and Tool, of the five that take arguments
    assert _without_summary(definitions) == [
        "fakepackage.tools.Callback",
        "fakepackage.tools.two_line_summary",
    ]
    assert _without_docstring([_fake_module("__all__ = []", doc=None)]) == ["fakepackage.tools"]


def _public_modules() -> list[types.ModuleType]:
    return [importlib.import_module(name) for name in PUBLIC_MODULES]


def test_every_public_module_has_a_docstring():
    assert _without_docstring(_public_modules()) == []


def test_the_public_definitions_document_their_arguments():
    share, missing = _args_coverage(_definitions(_public_modules(), "keras_anytime"))
    assert share >= 0.95, f"{share:.1%} document every argument; these do not: {missing}"


def test_the_public_definitions_open_with_a_one_line_summary():
    assert _without_summary(_definitions(_public_modules(), "keras_anytime")) == []
