"""The README's wire contract: it parses, it is complete, and the validator catches drift."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from _contract import (
    README,
    ContractSyntaxError,
    Obj,
    contract,
    event_violations,
    parse_contract,
    readme_block,
    violations,
)

CONTACT = {"id": "k1", "phoneNumber": "5511888888888", "name": None}
MESSAGE = {
    "id": "m1",
    "conversationId": "c1",
    "whatsappMessageId": "test-msg-id",
    "direction": "INBOUND",
    "type": "TEXT",
    "content": "Mensagem de teste Socket.io",
    "metadata": {"type": "text"},
    "status": "DELIVERED",
    "error": None,
    "timestamp": "2023-11-14T21:59:59.000Z",
    "contact": CONTACT,
    "reactions": [],
    "edited": False,
    "deleted": False,
}
MESSAGE_NEW = {"conversationId": "c1", "message": MESSAGE}


def test_the_readme_block_parses_and_every_name_is_declared() -> None:
    types = contract()
    for name in ("Message", "Conversation", "ServerToClientEvents", "ApiError", "SendRequest"):
        assert name in types
    events = types["ServerToClientEvents"]
    assert isinstance(events, Obj)
    assert set(events.fields) >= {
        "message:new",
        "conversation:new",
        "conversation:updated",
        "message:status-update",
        "message:updated",
    }


def test_the_specifications_message_conforms() -> None:
    assert event_violations("message:new", MESSAGE_NEW) == []


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (("direction",), "inbound", "direction"),
        (("status",), "RECEIVED", "status"),
        (("content",), None, "content"),
        (("type",), "Text", "type"),
        (("timestamp",), "2023-11-14 21:59:59", "ISO-8601"),
        (("contact", "phoneNumber"), 5511, "phoneNumber"),
    ],
)
def test_drift_from_the_contract_is_caught(path: tuple[str, ...], value: Any, needle: str) -> None:
    event = copy.deepcopy(MESSAGE_NEW)
    target = event["message"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = event_violations("message:new", event)
    assert found and needle in " ".join(found), found


def test_undeclared_fields_and_events_are_violations() -> None:
    extra = copy.deepcopy(MESSAGE_NEW)
    extra["message"]["surprise"] = 1
    assert event_violations("message:new", extra) == [
        "message:new.message.surprise: not in the contract"
    ]
    missing = copy.deepcopy(MESSAGE_NEW)
    del missing["message"]["contact"]
    assert event_violations("message:new", missing) == ["message:new.message.contact: missing"]
    assert event_violations("message:typo", {}) == [
        "event 'message:typo' is not in ServerToClientEvents"
    ]


def test_rest_bodies_are_checked_by_name() -> None:
    assert violations({"error": "content must be a string", "field": "content"}, "ApiError") == []
    assert violations({"message": "no"}, "ApiError") != []
    assert violations({"conversations": [], "nextCursor": None}, "ConversationList") == []


def test_the_parser_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ContractSyntaxError, match="never declared"):
        parse_contract("interface A { b: Missing; }")
    with pytest.raises(ContractSyntaxError):
        parse_contract("interface A { b: string")
    with pytest.raises(ContractSyntaxError, match="no ```ts block"):
        readme_block("## Wire contract\nnothing here\n")
    assert README.is_file()


def test_cards_carry_their_version_and_audit_lists_are_declared() -> None:
    card = {
        "id": "c1", "tenantId": "t1", "contactId": "k1", "accountId": "a1", "stage": "new",
        "assigneeId": None, "lastMessageAt": None, "createdAt": "2026-12-03T09:38:15.000Z",
        "updatedAt": "2026-12-03T09:38:15.000Z", "contact": CONTACT, "windowExpiresAt": None,
        "version": 3,
    }  # fmt: skip
    assert violations(card, "Conversation") == []
    assert violations({k: v for k, v in card.items() if k != "version"}, "Conversation") != []
    assert violations({**card, "version": "3"}, "Conversation") != []
    assert violations({"error": "version conflict", "conversation": card}, "VersionConflict") == []
    entry = {
        "id": "1", "tenantId": "t1", "userId": None, "action": "login_failed", "target": None,
        "details": {"reason": "wrong password"}, "requestId": "r1",
        "at": "2026-12-03T09:38:15.000Z",
    }  # fmt: skip
    assert violations({"entries": [entry], "nextCursor": None}, "AuditList") == []
    assert violations({**entry, "action": "logged_in"}, "AuditEntry") != []


def test_the_readme_declares_exactly_the_audit_actions_the_code_records() -> None:
    from desk.audit import ACTIONS

    declared = contract()["AuditAction"]
    assert {option.value for option in declared.options} == ACTIONS
