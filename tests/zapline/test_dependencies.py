"""Every package the product imports is a declared runtime dependency.

``make run`` installs the runtime dependencies only; a package that the test extras happen to
bring in (sniffio did, once) makes ``make test`` pass while a new user's first command fails.
This reads every import of the runtime packages with ``ast`` (imports inside functions too)
and maps each to the distribution that provides it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("api", "desk", "engine", "storage", "zapline")


def _imported_modules() -> dict[str, set[str]]:
    """Top-level module name -> the files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match is not None, requirement
        names.add(_normal(match.group(0)))
    return names


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_a_declared_dependency() -> None:
    providers = importlib.metadata.packages_distributions()
    declared = _declared()
    ours = set(RUNTIME_PACKAGES) | {"bench", "tests"}
    missing = []
    for module, files in sorted(_imported_modules().items()):
        if module in sys.stdlib_module_names or module in ours or module == "__future__":
            continue
        dists = {_normal(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)}) is not installed at all"
        if not dists & declared:
            missing.append(f"{module} from {sorted(dists)} (imported by {sorted(files)[:3]})")
    assert not missing, "imported but not in [project].dependencies: " + "; ".join(missing)


def test_the_check_sees_imports_inside_functions() -> None:
    # zapline/cli.py imports uvloop lazily; a check reading only module-level imports would
    # not have caught the sniffio crash either.
    assert "uvloop" in _imported_modules()
    assert "sniffio" in _imported_modules()
