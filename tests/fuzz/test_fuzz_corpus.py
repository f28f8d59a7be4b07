"""Replay the fuzz corpus: every input kept under ``tests/fuzz/corpus/<target>/`` is run
through its target on every test run, so a crash found once stays fixed.

``make fuzz`` grows the corpus (coverage-guided, atheris); this test needs no fuzzer. Inputs
named ``crash-*`` are what a fuzz run stopped on; until the bug is fixed they are listed in
``KNOWN_CRASHES`` with the reason, and run as strict xfails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _fuzz_targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"

# "<target>/<file name>" -> why it still fails; the fix removes the line.
KNOWN_CRASHES: dict[str, str] = {}


def _inputs() -> list[object]:
    params: list[object] = []
    for target in sorted(TARGETS):
        folder = CORPUS / target
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        for path in files:
            key = f"{target}/{path.name}"
            marks = []
            if key in KNOWN_CRASHES:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_CRASHES[key]))
            params.append(pytest.param(target, path, id=key, marks=marks))
    return params


@pytest.mark.parametrize(("target", "path"), _inputs())
def test_corpus_input(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


def test_every_target_has_a_corpus() -> None:
    for target in TARGETS:
        folder = CORPUS / target
        assert folder.is_dir() and any(folder.iterdir()), f"no corpus for {target}"
