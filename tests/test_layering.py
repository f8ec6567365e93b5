"""The package's layering: no import cycle between its modules, one family table, no
module over 400 lines."""

import ast
import re
from pathlib import Path

import keras_anytime

PACKAGE = Path(keras_anytime.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _faces(modules: dict[str, Path], packages: set[str]) -> dict[str, dict[str, str]]:
    """{package: {name: the package module its `__init__` imports the name from}}."""
    faces = {}
    for package in packages:
        found = {}
        for node in ast.parse(modules[package].read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found[alias.asname or alias.name] = sub if sub in modules else node.module
        faces[package] = found
    return faces


def import_graph() -> dict[str, set[str]]:
    """{module: the package modules it imports}, at module level or inside functions.
    `from package import submodule` depends on the submodule; a name that a package's
    `__init__` hands on depends on the module it comes from, and a package imported
    whole on every module its `__init__` imports. The top package, which every module
    imports first, is left out."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    packages = {m for m in modules if modules[m].name == "__init__.py"}
    faces = _faces(modules, packages)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_anytime"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    face = faces.get(node.module, {})
                    deps.add(sub if sub in modules else face.get(alias.name, node.module))
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("keras_anytime")}
        for dep in deps & packages:
            deps |= set(faces[dep].values())
        graph[name] = {d for d in deps if d in modules and d != name and d not in packages}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node, path):
        for dep in sorted(graph[node]):
            if dep in path:
                found.append(path[path.index(dep) :] + [dep])
            elif dep not in done:
                visit(dep, [*path, dep])
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])
    return found


def test_the_checker_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert "keras_anytime.presets" in graph["keras_anytime.applications.base"]
    # a name the datasets package hands on, and a package imported whole
    assert "keras_anytime.datasets.splits" in graph["keras_anytime.applications.base"]
    assert "keras_anytime.datasets.pipeline" in graph["keras_anytime.training.run"]
    assert _cycles(graph) == []


def test_the_preset_store_imports_no_model_code():
    assert import_graph()["keras_anytime.presets"] == set()


def test_one_family_table():
    sources = {p.name: p.read_text() for p in PACKAGE.rglob("*.py")}
    defining = [
        name for name, text in sources.items() if re.search(r"\nFAMILIES\b[^=\n]*= \{", text)
    ]
    assert defining == ["registry.py"]


def test_no_module_is_over_400_lines():
    lines = {
        p.relative_to(PACKAGE.parent): len(p.read_text().splitlines())
        for p in PACKAGE.rglob("*.py")
    }
    assert {path: n for path, n in lines.items() if n > 400} == {}
