"""The layering of DESIGN.md, checked on the import graph (imports inside functions count):
no import circle anywhere in src/, ``project/`` imports no capability, and no capability
imports ``pipeline``. A failure names the offending import, file and line."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "passerelle"
# What project/ may import besides itself: the ground floor.
GROUND = ("passerelle.project", "passerelle.errors", "passerelle.model")
# The layers above the capabilities: only they may import pipeline.
ORCHESTRATORS = ("passerelle.core", "passerelle.cli", "passerelle.api", "passerelle.demo",
                 "passerelle.definition", "passerelle.leaves",
                 "passerelle.render", "passerelle.pipeline", "passerelle.docgen")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


MODULES = _modules()


def _imports(module: str) -> list[tuple[str, int]]:
    """(imported passerelle module, line) for every import statement of ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.append((name, node.lineno))
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _where(module: str, target: str) -> str:
    line = next(n for t, n in GRAPH[module] if t == target)
    return f"{MODULES[module].relative_to(SRC.parent.parent)}:{line} imports {target}"


def test_project_imports_no_capability():
    bad = [_where(m, t) for m in GRAPH if m.startswith("passerelle.project")
           for t, _ in GRAPH[m] if not t.startswith(GROUND)]
    assert not sorted(set(bad)), "project/ is the ground floor:\n" + "\n".join(sorted(set(bad)))


def test_no_capability_imports_the_pipeline():
    bad = [_where(m, "passerelle.pipeline") for m in GRAPH
           if not m.startswith(ORCHESTRATORS) and any(t == "passerelle.pipeline"
                                                      for t, _ in GRAPH[m])]
    assert not bad, "pipeline.py orchestrates; capabilities never import it:\n" + "\n".join(bad)


def _circle() -> list[str] | None:
    """One import circle between modules (a package and its own submodules excepted)."""
    edges = {m: sorted({t for t, _ in GRAPH[m]}) for m in GRAPH}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                return [*stack[stack.index(t):], t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_circle():
    circle = _circle()
    if circle:
        steps = "\n".join(_where(a, b) for a, b in itertools.pairwise(circle))
        pytest.fail(f"import circle of {len(circle) - 1} modules:\n{steps}")
