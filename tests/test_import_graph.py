"""The package's import graph: leaf modules stay leaves and the model profiles / renderers have no cycle,
counting lazy (function-level) imports too — a cycle held together by a lazy import is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "pytest_ltx"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """``pytest_ltx`` modules ``path`` imports anywhere except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("pytest_ltx"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pytest_ltx"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import submodule`
    return out


def _graph() -> dict[str, set[str]]:
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = {d for d in _imports(path) if d in mods and d != name}
        # importing a submodule runs its package's __init__ first
        deps |= {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)} & set(mods)
        graph[name] = deps - {name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """One import path from ``start`` to ``goal``, or None."""
    seen, stack = {start}, [[start]]
    while stack:
        path = stack.pop()
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == goal:
                return path + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append(path + [nxt])
    return None


def test_model_profiles_and_renderers_have_no_import_cycle() -> None:
    g = _graph()
    assert "pytest_ltx.render.ltx2" in g["pytest_ltx.render.pool"]  # the pool really loads the backend
    for a, b in (("pytest_ltx.models", "pytest_ltx.render.ltx2"), ("pytest_ltx.render.base", "pytest_ltx.models"),
                 ("pytest_ltx.render", "pytest_ltx.models")):
        path = _reaches(g, a, b)
        assert path is None or _reaches(g, b, a) is None, " → ".join(path)


def test_leaf_modules_import_nothing_from_the_package() -> None:
    g = _graph()
    for leaf in ("pytest_ltx.errors", "pytest_ltx.jsonvalues"):
        assert g[leaf] == set(), (leaf, g[leaf])
    # storage (atomic writes, file modes) only needs the errors
    assert g["pytest_ltx.storage"] <= {"pytest_ltx.errors"}, g["pytest_ltx.storage"]


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from pytest_ltx.render.ltx2 import X\nif TYPE_CHECKING:\n    import pytest_ltx.cli\n")
    assert _imports(f) == {"pytest_ltx.render.ltx2", "pytest_ltx.render.ltx2.X"}
