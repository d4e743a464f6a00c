"""The import graph of edgesr points only down.

Computed with `ast` from the source, counting imports at module level and inside functions
alike (a lazy import is still a dependency). Rules:
- no cycle between modules, and none between stages (top-level subpackages/modules);
- compress imports neither check, profile nor cli;
- check imports from profile only its schema module;
- the foundation (recipe, data, archs, metrics, errors) imports no stage above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "edgesr"

UPPER_STAGES = {
    "train",
    "compress",
    "export",
    "check",
    "profile",
    "runtime",
    "evaluate",
    "upscale",
    "tune",
}
FOUNDATION = {"recipe", "data", "archs", "metrics", "errors"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(modules: Iterable[Path] | None = None) -> dict[str, set[str]]:
    """Module name -> the edgesr modules it imports (anywhere in its body)."""
    files = sorted(PKG.rglob("*.py")) if modules is None else list(modules)
    names = {_module_name(f) for f in files}
    graph: dict[str, set[str]] = {}
    for f in files:
        mod = _module_name(f)
        is_pkg = f.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                # `from edgesr.x import y` imports edgesr.x.y when y is a submodule.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names
                ]
            for t in targets:
                # Walk up to the longest prefix that is an edgesr module.
                while t and t not in names:
                    t = t.rpartition(".")[0]
                if t.startswith("edgesr") and t != mod:
                    deps.add(t)
        graph[mod] = deps
    return graph


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "edgesr"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        # The package root re-exports the public API lazily; it is the top, not a stage.
        if mod == "edgesr":
            continue
        s = stage_of(mod)
        out.setdefault(s, set()).update(
            stage_of(d) for d in deps if stage_of(d) not in (s, "edgesr")
        )
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_module_cycles(graph):
    assert cycles(graph) == []


def test_no_stage_cycles(graph):
    assert cycles(stage_graph(graph)) == []


def test_compress_does_not_orchestrate(graph):
    bad = sorted(
        (m, d)
        for m, deps in graph.items()
        if stage_of(m) == "compress"
        for d in deps
        if stage_of(d) in {"check", "profile", "cli"}
    )
    assert bad == []


def test_check_reads_only_profile_schema(graph):
    bad = sorted(
        (m, d)
        for m, deps in graph.items()
        if stage_of(m) == "check"
        for d in deps
        if stage_of(d) == "profile" and d != "edgesr.profile.schema"
    )
    assert bad == []


def test_foundation_imports_no_stage(graph):
    bad = sorted(
        (m, d)
        for m, deps in graph.items()
        if stage_of(m) in FOUNDATION
        for d in deps
        if stage_of(d) in UPPER_STAGES
    )
    assert bad == []


# The checker itself must be able to fail: run it on small trees that break each rule.


def _tree(tmp_path: Path, files: dict[str, str]) -> list[Path]:
    out = []
    for rel, src in files.items():
        p = tmp_path / "edgesr" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
        out.append(p)
    return out


def test_checker_sees_cycles_through_function_level_and_relative_imports(tmp_path, monkeypatch):
    monkeypatch.setattr(__import__(__name__), "PKG", tmp_path / "edgesr")
    files = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "check/__init__.py": "",
            "check/budget.py": "def f():\n    from edgesr.profile import latency\n",
            "profile/__init__.py": "",
            "profile/latency.py": "from ..check import budget\n",
            "profile/schema.py": "",
        },
    )
    g = import_graph(files)
    assert g["edgesr.check.budget"] == {"edgesr.profile.latency"}
    assert g["edgesr.profile.latency"] == {"edgesr.check.budget"}
    assert cycles(g) == [["edgesr.check.budget", "edgesr.profile.latency"]]
    assert cycles(stage_graph(g)) == [["check", "profile"]]
