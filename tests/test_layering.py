"""The packages depend one way: zapline -> api -> desk -> {engine, storage}.

Read from the source with ``ast`` (imports inside functions and under TYPE_CHECKING too), so a
circle cannot come back unnoticed: the composition root assembles, the API adapts HTTP, the
desk holds the domain, and the engine and storage know nothing of the layers above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("zapline", "api", "desk", "engine", "storage")
# Which packages each one may import (besides itself).
ALLOWED = {
    "zapline": {"api", "desk", "engine", "storage"},
    "api": {"desk", "engine", "storage"},
    "desk": {"engine", "storage"},
    "engine": set(),
    "storage": set(),
}


def package_imports() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    found: dict[str, dict[str, set[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != package:
                        found[package].setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_import_between_packages_points_down() -> None:
    wrong = [
        f"{package} imports {target} in {sorted(files)}"
        for package, targets in package_imports().items()
        for target, files in targets.items()
        if target not in ALLOWED[package]
    ]
    assert not wrong, "imports against the layering: " + "; ".join(wrong)


def test_the_allowed_graph_itself_has_no_circle() -> None:
    # Depth-first over ALLOWED: a package must never reach itself.
    def reaches(start: str, node: str, seen: set[str]) -> bool:
        for nxt in ALLOWED[node]:
            if nxt == start or (nxt not in seen and reaches(start, nxt, seen | {nxt})):
                return True
        return False

    assert not [p for p in PACKAGES if reaches(p, p, {p})]
