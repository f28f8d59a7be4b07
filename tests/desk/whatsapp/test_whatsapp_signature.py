"""X-Hub-Signature-256: sign and verify_signature over raw bytes."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desk.whatsapp import sign, verify_signature

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
SECRET = "app-secret"


def test_matches_an_independent_hmac() -> None:
    expected = hmac.new(b"app-secret", BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET) == "sha256=" + expected
    assert verify_signature(BODY, "sha256=" + expected, SECRET)


def test_uppercase_hex_and_surrounding_space_are_accepted() -> None:
    header = sign(BODY, SECRET)
    assert verify_signature(BODY, "  sha256=" + header[7:].upper() + " ", SECRET)


def test_wrong_secret_fails() -> None:
    assert not verify_signature(BODY, sign(BODY, SECRET), "other-secret")


def test_tampered_body_fails() -> None:
    header = sign(BODY, SECRET)
    assert not verify_signature(BODY.replace(b"[]", b"[ ]"), header, SECRET)
    assert not verify_signature(BODY + b"\n", header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=zz",
        "sha256=" + "é" * 64,
        "garbage",
        sign(BODY, SECRET)[7:],
    ],
)
def test_missing_or_garbled_header_fails(header: str | None) -> None:
    assert not verify_signature(BODY, header, SECRET)


def test_empty_secret_never_verifies_and_cannot_sign() -> None:
    forged = "sha256=" + hmac.new(b"", BODY, hashlib.sha256).hexdigest()
    assert not verify_signature(BODY, forged, "")
    with pytest.raises(ValueError):
        sign(BODY, "")


@given(st.binary(max_size=512), st.text(min_size=1, max_size=32), st.text(max_size=80))
def test_round_trip_and_garbage(body: bytes, secret: str, garbage: str) -> None:
    assert verify_signature(body, sign(body, secret), secret)
    assert verify_signature(body, garbage, secret) == (
        garbage.strip().lower() == sign(body, secret)
    )
