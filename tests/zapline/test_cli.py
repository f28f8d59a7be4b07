"""The admin commands print their records as the API does: camelCase keys, ISO-8601 UTC."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from zapline.cli import main

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def zapline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """``zapline ARGS`` in this process on a fresh SQLite file; returns its one JSON line."""
    for name in ("ZAPLINE_DATABASE_URL", "DATABASE_URL", "ZAPLINE_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZAPLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'z.db'}")

    def run(*args: str) -> Any:
        assert main(list(args)) == 0
        (line,) = capsys.readouterr().out.splitlines()
        return orjson.loads(line)

    return run


def test_tenant_user_and_account_are_printed_in_the_contracts_camel_case(zapline: Any) -> None:
    tenant = zapline("tenant", "create", "--name", "Acme")
    assert list(tenant) == ["id", "name", "createdAt"]
    assert tenant["name"] == "Acme" and ISO_UTC.match(tenant["createdAt"]), tenant

    user = zapline(
        "user", "create", "--tenant", tenant["id"], "--email", "Ann@Acme.example",
        "--password", "pw", "--role", "admin", "--name", "Ann",
    )  # fmt: skip
    # The wire contract's user, as POST /api/auth/login and GET /api/me answer it.
    assert user == {
        "id": user["id"],
        "tenantId": tenant["id"],
        "role": "admin",
        "email": "ann@acme.example",
        "name": "Ann",
    }

    account = zapline(
        "account", "add", "--tenant", tenant["id"], "--phone-number-id", "pn-1",
        "--verify-token", "vt", "--app-secret", "the-secret",
    )  # fmt: skip
    assert account == {
        "id": account["id"],
        "tenantId": tenant["id"],
        "phoneNumberId": "pn-1",
        "verifyToken": "vt",
        "appSecret": "***",
        "accessToken": None,
        "createdAt": account["createdAt"],
    }
    assert ISO_UTC.match(account["createdAt"]), account

    switched = zapline("account", "read-receipts", "--tenant", tenant["id"],
                       "--account", account["id"], "off")  # fmt: skip
    assert switched == {"accountId": account["id"], "readReceipts": False}
    migrated = zapline("migrate")
    assert set(migrated) == {"database", "applied", "status"}
