"""No import cycles among the project's own modules (house style: "No import cycles").

Every module of the packages below is parsed with ``ast`` (nothing is imported, so the check takes
well under a second); each ``import``/``from ... import`` of one of those packages is resolved to the
module it loads. Imports inside a function, and those under ``if TYPE_CHECKING:``, run later or never,
so only the module-level ones (class bodies and ``try`` blocks included) may not form a cycle. A cycle
is reported as its path, ``a -> b -> a``, with the line of each import.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cf_tasks", "plugins", "selection", "training")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    module_level: bool


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES`."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest project module that ``name`` (a module or a name inside one) refers to."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _base_of(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module):
    """(import node, runs at import time?) for every import statement of a module."""
    stack: list[tuple[ast.AST, bool]] = [(tree, True)]
    while stack:
        node, module_level = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, module_level
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.append((child, False))
            elif isinstance(child, ast.If) and _is_type_checking(child):
                stack.append((ast.Module(body=child.body, type_ignores=[]), False))
                stack.extend((c, module_level) for c in child.orelse)
            else:
                stack.append((child, module_level))


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """Every import of a project module by a project module (a module importing itself is left out)."""
    edges = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _imports(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = _base_of(node, module, path.name == "__init__.py")
                names = [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                target = _resolve(name, modules) if name.split(".")[0] in PACKAGES else None
                if target is not None and target != module:
                    edges.append(Edge(module, target, node.lineno, module_level))
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One shortest cycle per strongly connected component of the graph (Tarjan, then BFS)."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []

    def connect(node: str) -> None:  # recursion depth <= number of modules (~120)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                connect(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_shortest_cycle(graph, component) for component in components]


def _shortest_cycle(graph: dict[str, list[Edge]], component: set[str]) -> list[Edge]:
    start = min(component)
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in graph[node]:
                if edge.target == start:
                    return paths[node] + [edge]
                if edge.target in component and edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component has one


def describe(cycle: list[Edge]) -> str:
    return cycle[0].source + "".join(f" -(line {e.line})-> {e.target}" for e in cycle)


@functools.lru_cache(maxsize=1)
def project_edges() -> tuple[Edge, ...]:
    modules = module_files()
    edges = tuple(import_edges(modules))
    assert len(modules) > 50 and sum(e.module_level for e in edges) > 50  # the walk really saw the packages
    return edges


def test_no_module_level_import_cycles():
    cycles = find_cycles([e for e in project_edges() if e.module_level])
    assert not cycles, "module-level import cycles:\n" + "\n".join(describe(c) for c in cycles)


def test_no_cycle_hidden_behind_a_function_level_import():
    """Both cycles the project once had (families.base <-> generation, training.evaluate <-> runtime) had
    one side "fixed" by importing inside a function; the fix is to move the shared code to the module
    both can import."""
    cycles = find_cycles(list(project_edges()))
    assert not cycles, ("import cycles through function-level imports (move the shared code to a module both "
                        "can import):\n" + "\n".join(describe(c) for c in cycles))


def test_the_checker_finds_a_cycle_and_ignores_function_level_imports(tmp_path, monkeypatch):
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from plugins.b import thing\n")
    (package / "b.py").write_text("from . import c\nthing = 1\n")
    (package / "c.py").write_text("import plugins.a\n\ndef later():\n    from plugins import d\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import plugins.c\n"
                                  "class K:\n    from plugins.a import thing\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    modules = module_files()
    edges = import_edges(modules)
    assert {(e.source, e.target, e.module_level) for e in edges} == {
        ("plugins.a", "plugins.b", True), ("plugins.b", "plugins.c", True), ("plugins.c", "plugins.a", True),
        ("plugins.c", "plugins.d", False), ("plugins.d", "plugins.c", False), ("plugins.d", "plugins.a", True)}
    cycles = find_cycles([e for e in edges if e.module_level])
    assert [describe(c) for c in cycles] == [
        "plugins.a -(line 1)-> plugins.b -(line 1)-> plugins.c -(line 1)-> plugins.a"]
