"""The package's layout keeps its dependencies pointing one way (docs/design.md, "How bench/ is grouped"):
the doors -> execute -> outputs -> inputs -> the shared base, the gate reads outputs only, and every part of
bench/ may use explainers/ and metrics/, which use nothing of bench/. Every import counts, a function's
deferred ``import`` too, and no two modules import each other, directly or around a loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "explainers", "metrics")

#: the layer of each part of bench/, and the layers it may import from
BASE = {"bench.errors", "bench.store", "bench.progress", "bench.options"}
DOORS = {"bench", "bench.__main__", "bench.api", "bench.cli", "bench.cache", "bench.docs"}
_BELOW = {"explainers", "metrics"}  # what every part of bench/ may use
MAY_IMPORT = {
    "base": {"base", *_BELOW},
    "inputs": {"base", "inputs", *_BELOW},
    "outputs": {"base", "inputs", "outputs", *_BELOW},
    "execute": {"base", "inputs", "outputs", "execute", *_BELOW},
    "gate": {"base", "inputs", "outputs", "gate", *_BELOW},
    "doors": {"base", "inputs", "outputs", "execute", "gate", "doors", *_BELOW},
    "explainers": {"explainers", "metrics"},
    "metrics": {"metrics"},
}


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    if module in DOORS:
        return "doors"
    top, _, rest = module.partition(".")
    if top in ("explainers", "metrics"):
        return top
    stage = rest.split(".")[0]
    if stage in ("inputs", "outputs", "execute", "gate"):
        return stage
    raise AssertionError(f"{module} belongs to no layer: put it in one of bench/'s stages or name it here")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its source (``from a import b`` counts as a.b when
    that is a module, else as a)."""
    out = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {m: imports(m, p, set(found)) for m, p in found.items()}


def test_every_import_points_down_the_layers(graph):
    wrong = sorted(f"{m} ({layer(m)}) imports {d} ({layer(d)})" for m, deps in graph.items() for d in deps
                   if layer(d) not in MAY_IMPORT[layer(m)])
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles(graph):
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return None
        for dep in sorted(graph[module]):
            if dep.startswith(module + "."):  # a package importing its own submodules is not a loop
                continue
            cycle = visit(dep, path + [module])
            if cycle:
                return cycle
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module, [])
        assert cycle is None, " -> ".join(cycle)


def test_the_checks_see_a_wrong_import(tmp_path):
    """The two checks above fail on a door imported from below and on a loop."""
    known = {"bench.api", "bench.inputs.data", "bench.inputs.ground_truth"}
    assert "doors" not in MAY_IMPORT[layer("bench.inputs.data")]
    source = tmp_path / "data.py"
    source.write_text("def f():\n    from bench.api import run\n    from bench.inputs import ground_truth\n")
    assert imports("bench.inputs.data", source, known) == {"bench.api", "bench.inputs.ground_truth"}


def test_no_module_imports_a_private_name_of_another(graph):
    found = modules()
    wrong = []
    for module, path in found.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES \
                    and node.module != module:
                wrong += [f"{module}: from {node.module} import {a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, "\n".join(wrong)
