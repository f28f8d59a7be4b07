"""The README's account of what the console emits matches api/console (no build step, so the
sources are what browsers run)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _console_emits() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "api" / "console").glob("*.js"):
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"""emit\(\s*["']([\w:-]+)["']""", text))
        # emit(on ? "a" : "b", ...)
        for a, b in re.findall(
            r"""emit\([^,"']*\?\s*["']([\w:-]+)["']\s*:\s*["']([\w:-]+)["']""", text
        ):
            found |= {a, b}
    return found


def _console_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## The console", 1)[1].split("\n## ", 1)[0]


def test_every_event_the_console_emits_is_named_in_the_readme_console_section() -> None:
    section = _console_section()
    emits = _console_emits()
    assert {"conversation:join", "typing:start"} <= emits, emits
    missing = sorted(
        e for e in emits - {"conversation:join", "conversation:leave"} if f"`{e}`" not in section
    )
    assert not missing, (
        f"the console emits {missing}, which the README's console section does not name"
    )


def test_the_readme_names_no_console_emit_the_console_does_not_send() -> None:
    section = _console_section()
    said = re.search(r"It (?:also )?emits (.*?)(?:\.\s|\n\n)", section, re.S)
    assert said, "the README says what else the console emits"
    named = set(re.findall(r"`([\w:-]+)`", said.group(1)))
    assert named <= _console_emits(), (
        f"README says the console emits {sorted(named - _console_emits())}"
    )


def test_the_readme_names_the_stage_values_of_the_console_columns() -> None:
    # The columns are labelled New, In progress, Waiting, Resolved; an API user who PATCHes
    # "in_progress" gets a fifth column, so the README says which values they are.
    store = (ROOT / "api" / "console" / "store.js").read_text(encoding="utf-8")
    declared = re.search(r"export const STAGES = \[([^\]]*)\]", store)
    assert declared
    stages = re.findall(r"""["']([\w-]+)["']""", declared.group(1))
    board = _console_section().split("- **Board**", 1)[1].split("\n- ", 1)[0]
    assert all(f"`{stage}`" in board for stage in stages), (stages, board)
