"""What a card change may say: ``check_stage`` and ``check_version``, shared by REST and sockets."""

from __future__ import annotations

from typing import Any

import pytest

from desk.conversations import MAX_STAGE, MAX_VERSION, check_stage, check_version


@pytest.mark.parametrize(
    "stage", ["new", "Em atendimento", "👩\u200d💻 suporte", "ø" * MAX_STAGE, " padded "]
)
def test_a_printable_stage_is_taken_as_it_is(stage: str) -> None:
    assert check_stage(stage) == stage


def test_an_absent_stage_is_none() -> None:
    assert check_stage(None) is None


@pytest.mark.parametrize(
    "stage",
    ["a\x00b", "a\tb", "two\nlines", "a\rb", "\x1b[2J", "del\x7f", "c1\x85", "\x9f", "\ud800"],
)
def test_control_characters_and_lone_surrogates_are_refused(stage: str) -> None:
    with pytest.raises(ValueError, match="^stage must not contain control characters"):
        check_stage(stage)


@pytest.mark.parametrize("stage", ["", "   ", "\u2028", "x" * (MAX_STAGE + 1), 3, True, ["new"]])
def test_an_empty_long_or_non_string_stage_is_refused(stage: Any) -> None:
    with pytest.raises(ValueError, match="^stage must be a non-empty string of at most 64 "):
        check_stage(stage)


@pytest.mark.parametrize("version", [None, 0, 1, MAX_VERSION])
def test_an_expected_version_is_an_int_up_to_the_columns_range(version: int | None) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize(
    "version",
    [True, False, "1", "", 1.0, 1.5, float("nan"), -1, MAX_VERSION + 1, 2**64, [1], {"v": 1}],
)
def test_anything_else_is_refused_with_one_message(version: Any) -> None:
    with pytest.raises(ValueError) as refused:
        check_version(version)
    assert str(refused.value) == "expectedVersion must be an integer from 0 to 2147483647"
