"""The layers hold: no import cycle among the project's modules, the core (bench) never imports a plugin (retrievers,
tasks), and no plugin or stage imports the code that runs them (the pipeline, the orchestrator, the CLI). Every
import counts, those inside functions and under TYPE_CHECKING too: a deferred import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

PACKAGES = ("bench", "retrievers", "tasks")
PLUGINS = ("retrievers", "tasks")
# what runs systems: plugins and stages sit below it and reach it only through RunContext.services
ORCHESTRATION = ("bench.systems.pipeline", "bench.systems.session", "bench.evaluate", "bench.api", "bench.cli")
STAGE_PACKAGES = ("bench.systems.expand", "bench.systems.fusion", "bench.systems.rerank")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _imports(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for n in names:
            target = _resolve(n, known)
            if target and target != mod and not (is_pkg and target.startswith(mod + ".")):
                found.add(target)
    return found


MODULES = _modules()
GRAPH = {mod: _imports(mod, path, MODULES) for mod, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_the_project() -> None:
    assert len(GRAPH) > 80 and "bench.systems.pipeline" in GRAPH["bench.evaluate"]


def test_no_import_cycles() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_never_imports_a_plugin() -> None:
    bad = [(m, t) for m, targets in GRAPH.items() if m.split(".")[0] == "bench"
           for t in targets if t.split(".")[0] in PLUGINS]
    assert bad == []


def test_plugins_and_stages_never_import_what_runs_them() -> None:
    below = [m for m in GRAPH if m.split(".")[0] in PLUGINS or m.startswith(STAGE_PACKAGES)]
    bad = [(m, t) for m in below for t in GRAPH[m] if t.startswith(ORCHESTRATION)]
    assert below and bad == []
