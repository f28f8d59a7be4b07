"""The engine's modules import each other one way only: no circle, however the import is made.

Every ``import`` / ``from ... import`` in a module counts, including those under
``if TYPE_CHECKING:`` and inside functions: a circle hidden behind a type-only import is
still a circle for the reader (the transports once called back into ``SocketServer`` that
way). The package's own ``__init__`` is left out, since it only re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import engine

ROOT = Path(engine.__file__).parent
PACKAGE = "engine"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Engine modules ``name`` imports (a name from a package counts as its module if any)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target in known and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        if name == PACKAGE:
            continue  # the package __init__ re-exports; it is nobody's dependency
        graph[name] = {t for t in _imports(name, path, known) if t != PACKAGE}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_engine_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert "engine._server" in graph and "engine.transport._http" in graph  # the walk works
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_detection_sees_type_only_imports(tmp_path: Path) -> None:
    # The checker itself: a circle made only of a TYPE_CHECKING import is found.
    graph = {"a": {"b"}, "b": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "a"]
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine._server import X\n"
    )
    module = tmp_path / "m.py"
    module.write_text(source)
    assert _imports("engine.transport.m", module, {"engine._server"}) == {"engine._server"}


def test_layers_point_down() -> None:
    """protocol imports nothing else of the engine; transport nothing above itself."""
    graph = _graph()
    for name, targets in graph.items():
        if name.startswith("engine.protocol"):
            assert all(t.startswith("engine.protocol") for t in targets), (name, targets)
        if name.startswith("engine.transport"):
            allowed = ("engine.transport", "engine.protocol", "engine.options")
            assert all(t.startswith(allowed) for t in targets), (name, targets)


def test_protocol_core_does_no_io() -> None:
    for path in (ROOT / "protocol").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for imported in names:
                top = imported.split(".")[0]
                assert top not in {"anyio", "asyncio", "trio", "socket", "time"}, (path, imported)
