"""parse_webhook and phone_number_ids against bodies shaped like Meta's documented webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desk.whatsapp import (
    WebhookFormatError,
    WrongWebhookObject,
    load_json,
    parse_webhook,
    phone_number_ids,
    status_webhook,
    text_message_webhook,
)
from storage._text import encode_json

PID = "106540352242922"
USER = "16505551234"


def _change(
    messages: list[Any] | None = None,
    statuses: list[Any] | None = None,
    pid: str = PID,
    contacts: list[Any] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": pid},
    }
    if messages is not None:
        value["contacts"] = (
            contacts if contacts is not None else [{"profile": {"name": "Sheena"}, "wa_id": USER}]
        )
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {"value": value, "field": "messages"}


def _body(*changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": list(changes)}],
    }


def _msg(kind: str, part: Any, wamid: str = "wamid.A", **extra: Any) -> dict[str, Any]:
    return {"from": USER, "id": wamid, "timestamp": "1739321024", "type": kind, kind: part, **extra}


MEDIA = {"mime_type": "image/jpeg", "sha256": "abc", "id": "2754859441498128"}

CASES = [
    (_msg("text", {"body": "Hi there"}), "TEXT", "Hi there"),
    (_msg("image", {**MEDIA, "caption": "my cat"}), "IMAGE", "my cat"),
    (_msg("image", MEDIA), "IMAGE", ""),
    (_msg("video", {**MEDIA, "mime_type": "video/mp4", "caption": "clip"}), "VIDEO", "clip"),
    (_msg("audio", {**MEDIA, "mime_type": "audio/ogg", "voice": True}), "AUDIO", ""),
    (_msg("document", {**MEDIA, "filename": "invoice.pdf"}), "DOCUMENT", "invoice.pdf"),
    (
        _msg("document", {**MEDIA, "filename": "a.pdf", "caption": "the bill"}),
        "DOCUMENT",
        "the bill",
    ),
    (_msg("sticker", {**MEDIA, "mime_type": "image/webp", "animated": False}), "STICKER", ""),
    (
        _msg(
            "location",
            {
                "address": "101 Forest Ave, Palo Alto",
                "latitude": 37.44,
                "longitude": -122.16,
                "name": "Philz Coffee",
                "url": "https://example.invalid",
            },
        ),
        "LOCATION",
        "Philz Coffee, 101 Forest Ave, Palo Alto (37.44, -122.16)",
    ),
    (_msg("location", {"latitude": 1.5, "longitude": 2}), "LOCATION", "(1.5, 2)"),
    (_msg("reaction", {"message_id": "wamid.X", "emoji": "\U0001f44d"}), "REACTION", "\U0001f44d"),
    (_msg("reaction", {"message_id": "wamid.X"}), "REACTION", ""),
    (
        _msg(
            "contacts",
            [
                {"name": {"formatted_name": "Barbara Johnson", "first_name": "Barbara"}},
                {"name": {"first_name": "Ann", "last_name": "Lee"}, "phones": [{"phone": "+1"}]},
            ],
        ),
        "CONTACTS",
        "Barbara Johnson, Ann Lee",
    ),
    (
        _msg(
            "interactive", {"type": "button_reply", "button_reply": {"id": "c", "title": "Cancel"}}
        ),
        "INTERACTIVE",
        "Cancel",
    ),
    (
        _msg(
            "interactive",
            {
                "type": "list_reply",
                "list_reply": {"id": "p", "title": "Express", "description": "d"},
            },
        ),
        "INTERACTIVE",
        "Express",
    ),
    (
        _msg("button", {"payload": "STOP", "text": "Unsubscribe"}, context={"id": "wamid.T"}),
        "BUTTON",
        "Unsubscribe",
    ),
    (
        _msg(
            "unsupported",
            {"type": "poll_creation"},
            errors=[{"code": 131051, "title": "Message type unknown"}],
        ),
        "UNSUPPORTED",
        "Message type unknown",
    ),
    # A type Meta adds after this code was written: kept, by name, with nothing to read.
    (_msg("poll", {"question": "?"}), "UNSUPPORTED", ""),
    (_msg("order", {"catalog_id": "1", "product_items": []}), "ORDER", ""),
    (
        _msg(
            "order",
            {
                "catalog_id": "7",
                "text": "no onions",
                "product_items": [
                    {
                        "product_retailer_id": "HAMBURGER",
                        "quantity": 3,
                        "item_price": 10,
                        "currency": "ILS",
                    },
                    {
                        "product_retailer_id": "COLA",
                        "quantity": "1",
                        "item_price": "4.5",
                        "currency": "ILS",
                    },
                ],
            },
        ),
        "ORDER",
        "3 × HAMBURGER — 30.00 ILS; 1 × COLA — 4.50 ILS; total 34.50 ILS; no onions",
    ),
    (
        _msg(
            "system",
            {
                "body": "User Sheena changed from 16505551234 to 16505559999",
                "wa_id": "16505559999",
                "type": "user_changed_number",
            },
        ),
        "SYSTEM",
        "User Sheena changed from 16505551234 to 16505559999",
    ),
    (
        {"from": USER, "id": "wamid.A", "timestamp": "1739321024", "type": "request_welcome"},
        "SYSTEM",
        "The customer opened the chat for the first time",
    ),
    (
        _msg(
            "interactive",
            {
                "type": "nfm_reply",
                "nfm_reply": {
                    "name": "flow",
                    "body": "Sent",
                    "response_json": (
                        '{"flow_token": "t-1", "screen_0_First_name_0": "Ana",'
                        ' "screen_0_Toppings_1": ["cheese", "ham"], "agree": true}'
                    ),
                },
            },
        ),
        "INTERACTIVE",
        "First name: Ana, Toppings: cheese, ham, agree: yes",
    ),
    (
        _msg(
            "interactive",
            {"type": "nfm_reply", "nfm_reply": {"body": "Sent", "response_json": "not json"}},
        ),
        "INTERACTIVE",
        "Sent",
    ),
    (
        _msg(
            "text",
            {"body": "Is this still on sale?"},
            referral={"source_type": "ad", "headline": "Summer sale", "source_id": "1"},
        ),
        "TEXT",
        "Is this still on sale?",
    ),
    (
        _msg("text", {"body": ""}, referral={"source_type": "ad", "headline": "Summer sale"}),
        "TEXT",
        "Ad: Summer sale",
    ),
    (
        _msg(
            "edit",
            {
                "original_message_id": "wamid.O",
                "message": {"type": "text", "text": {"body": "fixed"}},
            },
        ),
        "UNSUPPORTED",
        "Edited a message: fixed",
    ),
    (_msg("revoke", {"original_message_id": "wamid.O"}), "UNSUPPORTED", "Deleted a message"),
]


@pytest.mark.parametrize(("message", "kind", "content"), CASES)
def test_every_message_type(message: dict[str, Any], kind: str, content: str) -> None:
    batch = parse_webhook(_body(_change([message])))
    assert batch.skipped == []
    (parsed,) = batch.messages
    assert parsed.type == kind
    assert parsed.content == content
    assert parsed.metadata is message
    assert parsed.phone_number_id == PID
    assert parsed.display_phone_number == "15550783881"
    assert parsed.wa_id == USER
    assert parsed.contact_name == "Sheena"
    assert parsed.whatsapp_message_id == "wamid.A"
    assert parsed.timestamp == datetime(2025, 2, 12, 0, 43, 44, tzinfo=UTC)


def test_many_entries_changes_and_messages_keep_their_order() -> None:
    other = [
        {"profile": {"name": "Bob"}, "wa_id": "222"},
        {"profile": {"name": "Al"}, "wa_id": USER},
    ]
    second = [
        _msg("text", {"body": "two"}, "wamid.2"),
        {**_msg("text", {"body": "three"}, "wamid.3"), "from": "222"},
    ]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "w1", "changes": [_change([_msg("text", {"body": "one"}, "wamid.1")])]},
            {
                "id": "w2",
                "changes": [
                    _change(second, pid="other-pid", contacts=other),
                    _change(statuses=[{"id": "wamid.S", "status": "delivered", "timestamp": "1"}]),
                ],
            },
        ],
    }
    batch = parse_webhook(body)
    assert [m.content for m in batch.messages] == ["one", "two", "three"]
    assert [m.contact_name for m in batch.messages] == ["Sheena", "Al", "Bob"]
    assert [m.phone_number_id for m in batch.messages] == [PID, "other-pid", "other-pid"]
    assert [s.status for s in batch.statuses] == ["DELIVERED"]
    assert batch.phone_number_ids == frozenset({PID, "other-pid"})
    assert phone_number_ids(body) == batch.phone_number_ids
    assert batch.skipped == []


@pytest.mark.parametrize(
    ("word", "expected"),
    [("sent", "SENT"), ("delivered", "DELIVERED"), ("read", "READ"), ("played", "READ")],
)
def test_status_words(word: str, expected: str) -> None:
    batch = parse_webhook(
        status_webhook(phone_number_id=PID, wamid="wamid.Z", status=word, timestamp=60)
    )
    (status,) = batch.statuses
    assert (status.status, status.whatsapp_message_id, status.phone_number_id) == (
        expected,
        "wamid.Z",
        PID,
    )
    assert status.recipient_id == "5511999999999"
    assert status.timestamp == datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    assert status.errors == []


def test_failed_status_carries_errors() -> None:
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "more than 24 hours"},
    }
    batch = parse_webhook(
        status_webhook(phone_number_id=PID, wamid="wamid.F", status="failed", errors=[error])
    )
    (status,) = batch.statuses
    assert status.status == "FAILED"
    assert status.errors == [error]


def test_malformed_parts_are_skipped_with_reasons_and_the_rest_survives() -> None:
    good = _msg("text", {"body": "fine"}, "wamid.ok")
    body = _body(
        _change(
            [
                "not a message",
                {**good, "id": ""},
                {**good, "id": "wamid.t", "timestamp": "yesterday"},
                {**good, "id": "wamid.big", "timestamp": "9" * 30},
                good,
            ],
            statuses=[
                {"id": "wamid.s", "status": "deleted", "timestamp": "1"},
                {"status": "read", "timestamp": "1"},
                {"id": "wamid.r", "status": "read", "timestamp": "1"},
            ],
        ),
        {"field": "account_update", "value": {"event": "x"}},
        {"field": "messages", "value": {"messages": []}},
        {
            "field": "messages",
            "value": {
                "metadata": {"phone_number_id": PID},
                "errors": [{"code": 130429, "title": "Rate limit hit"}],
            },
        },
    )
    batch = parse_webhook(body)
    assert [m.whatsapp_message_id for m in batch.messages] == ["wamid.ok"]
    assert [s.whatsapp_message_id for s in batch.statuses] == ["wamid.r"]
    text = "\n".join(batch.skipped)
    assert len(batch.skipped) == 9
    for needle in (
        "messages[0]",
        "no message 'id'",
        "wamid.t",
        "wamid.big",
        "'deleted'",
        "account_update",
        "phone_number_id",
        "130429 Rate limit hit",
    ):
        assert needle in text


def test_a_message_without_from_uses_the_only_contact() -> None:
    message = _msg("text", {"body": "x"})
    del message["from"]
    (parsed,) = parse_webhook(_body(_change([message]))).messages
    assert parsed.wa_id == USER
    message_two = dict(message)
    batch = parse_webhook(_body(_change([message_two], contacts=[])))
    assert batch.messages == [] and "no 'from'" in batch.skipped[0]


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "whatsapp",
        {},
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
    ],
)
def test_not_a_whatsapp_webhook(body: Any) -> None:
    with pytest.raises(WebhookFormatError):
        parse_webhook(body)
    with pytest.raises(WebhookFormatError):
        phone_number_ids(body)


# The product specification's own "test via webhook" body, byte for byte: no ``object``, no
# ``field``. People test by hand with it, so it must be read as a WhatsApp webhook.
SPEC_BODY = (
    b'{"entry":[{"id":"test-entry","changes":[{"value":{"messaging_product":"whatsapp",'
    b'"metadata":{"display_phone_number":"5511999999999","phone_number_id":"test-phone-id"},'
    b'"messages":[{"from":"5511888888888","id":"test-msg-id","timestamp":"1699999999",'
    b'"type":"text","text":{"body":"Mensagem de teste Socket.io"}}]}}]}]}'
)


def test_the_specification_body_without_object_and_field_is_a_webhook() -> None:
    body = orjson.loads(SPEC_BODY)
    assert phone_number_ids(body) == frozenset({"test-phone-id"})
    batch = parse_webhook(body)
    assert batch.skipped == []
    (message,) = batch.messages
    assert (message.phone_number_id, message.wa_id, message.whatsapp_message_id) == (
        "test-phone-id",
        "5511888888888",
        "test-msg-id",
    )
    assert (message.type, message.content) == ("TEXT", "Mensagem de teste Socket.io")


@pytest.mark.parametrize("obj", ["page", "instagram", None, 1])
def test_a_body_naming_another_object_is_refused(obj: Any) -> None:
    body = {**orjson.loads(SPEC_BODY), "object": obj}
    with pytest.raises(WrongWebhookObject, match="expected 'whatsapp_business_account'"):
        parse_webhook(body)
    with pytest.raises(WrongWebhookObject):
        phone_number_ids(body)


def test_media_without_caption_has_empty_content() -> None:
    message = _msg("audio", {"id": "media-1", "mime_type": "audio/ogg"})
    (parsed,) = parse_webhook(_body(_change([message]))).messages
    assert (parsed.type, parsed.content) == ("AUDIO", "")


def test_sample_text_webhook_round_trips() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    body = text_message_webhook(
        phone_number_id="p1", wa_id="55", name="Ana", wamid="wamid.W", body="oi", timestamp=when
    )
    (m,) = parse_webhook(body).messages
    assert (
        m.phone_number_id,
        m.wa_id,
        m.contact_name,
        m.whatsapp_message_id,
        m.content,
        m.timestamp,
    ) == (
        "p1",
        "55",
        "Ana",
        "wamid.W",
        "oi",
        when,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
message_keys = st.sampled_from(
    [
        "from",
        "id",
        "timestamp",
        "type",
        "text",
        "image",
        "location",
        "contacts",
        "interactive",
        "button",
        "reaction",
        "document",
    ]
)
near_messages = st.dictionaries(
    message_keys, json_values | st.sampled_from(["text", "1", USER]), max_size=6
)
near_value = st.fixed_dictionaries(
    {"metadata": st.one_of(json_values, st.fixed_dictionaries({"phone_number_id": json_values}))},
    optional={
        "messages": st.lists(near_messages | json_values, max_size=3) | json_values,
        "statuses": st.lists(
            st.dictionaries(st.sampled_from(["id", "status", "timestamp", "errors"]), json_values),
            max_size=3,
        ),
        "contacts": json_values,
        "errors": json_values,
    },
)
near_bodies = st.fixed_dictionaries(
    {
        "object": st.sampled_from(["whatsapp_business_account", "page"]) | json_values,
        "entry": st.lists(
            st.fixed_dictionaries(
                {
                    "changes": st.lists(
                        st.fixed_dictionaries(
                            {"field": st.just("messages") | json_values, "value": near_value}
                        )
                        | json_values,
                        max_size=3,
                    )
                }
            )
            | json_values,
            max_size=3,
        )
        | json_values,
    }
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, near_bodies))
def test_arbitrary_json_raises_nothing_but_webhook_format_error(body: Any) -> None:
    try:
        batch = parse_webhook(body)
    except WebhookFormatError:
        with pytest.raises(WebhookFormatError):
            phone_number_ids(body)
        return
    assert phone_number_ids(body) == batch.phone_number_ids
    for message in batch.messages:
        assert message.timestamp.tzinfo is UTC
        assert isinstance(message.content, str)


def test_load_json_reads_a_lone_surrogate_escape_and_refuses_non_json() -> None:
    assert load_json(b'{"t": "a\\ud800b"}') == {"t": "a\ud800b"}
    assert load_json(b'{"t": "ok"}') == {"t": "ok"}
    for raw in (b"{", b"\xff", b'{"t": "a"} trailing'):
        with pytest.raises(ValueError):
            load_json(raw)


def test_load_json_reads_integers_beyond_64_bits_as_orjson_does() -> None:
    # 1e400 sends the body through the stdlib fallback; an exact 21-digit integer there
    # would reach storage, whose orjson cannot write it (the message was never stored).
    raw = b'{"t": 1e400, "big": 184467440737095516160, "low": -9223372036854775809,'
    raw += b' "u64": 18446744073709551615, "huge": ' + b"9" * 400 + b"}"
    value = load_json(raw)
    assert value["big"] == 1.8446744073709552e20 and isinstance(value["big"], float)
    assert value["low"] == orjson.loads(b"-9223372036854775809")
    assert value["u64"] == 18446744073709551615 and isinstance(value["u64"], int)
    assert value["huge"] == float("inf")
    assert orjson.loads(encode_json(value)) == {
        "t": None,
        "big": 1.8446744073709552e20,
        "low": -9.223372036854776e18,
        "u64": 18446744073709551615,
        "huge": None,
    }


def test_errors_of_a_message_are_kept_as_code_title_details() -> None:
    raw = _msg(
        "interactive",
        {"type": "button_reply", "button_reply": {"id": "y", "title": "Yes"}},
        errors=[
            {
                "code": 131000,
                "title": "Something went wrong",
                "message": "Something went wrong",
                "error_data": {"details": "Unable to process the reply"},
            }
        ],
    )
    (parsed,) = parse_webhook(_body(_change([raw]))).messages
    assert parsed.error == {
        "code": 131000,
        "title": "Something went wrong",
        "details": "Unable to process the reply",
    }
    assert parsed.content == "Yes"  # what can be shown still is
    (plain,) = parse_webhook(_body(_change([_msg("text", {"body": "hi"})]))).messages
    assert plain.error is None


def test_a_contact_name_only_names_its_own_wa_id() -> None:
    other = [{"profile": {"name": "Someone Else"}, "wa_id": "19998887777"}]
    (parsed,) = parse_webhook(
        _body(_change([_msg("text", {"body": "hi"})], contacts=other))
    ).messages
    assert parsed.wa_id == USER
    assert parsed.contact_name is None


def test_reactions_edits_and_deletions_name_the_message_they_change() -> None:
    messages = [
        _msg("reaction", {"message_id": "wamid.T", "emoji": "👍"}, wamid="wamid.R"),
        _msg("reaction", {"message_id": "wamid.T"}, wamid="wamid.R0"),  # removed
        _msg(
            "edit",
            {
                "original_message_id": "wamid.T",
                "message": {"type": "image", "image": {"id": "1", "caption": "new caption"}},
            },
            wamid="wamid.E",
        ),
        _msg("revoke", {"original_message_id": "wamid.T"}, wamid="wamid.D"),
        _msg("revoke", {}, wamid="wamid.D0"),  # no target: stored as a message of its own
    ]
    parsed = parse_webhook(_body(_change(messages))).messages
    changes = [
        (m.change.kind, m.change.target, m.change.content) if m.change else None for m in parsed
    ]
    assert changes == [
        ("reaction", "wamid.T", "👍"),
        ("reaction", "wamid.T", ""),
        ("edit", "wamid.T", "new caption"),
        ("revoke", "wamid.T", None),
        None,
    ]
    assert parsed[2].change is not None
    assert parsed[2].change.body == messages[2]["edit"]
    assert parsed[4].content == "Deleted a message"


def test_business_app_echoes_are_filed_under_their_recipient() -> None:
    echo = {
        "from": "15550783881",
        "to": USER,
        "id": "wamid.ECHO",
        "timestamp": "1739321024",
        "type": "text",
        "text": {"body": "sent from the phone"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PID},
        "message_echoes": [echo],
    }
    batch = parse_webhook(_body({"value": value, "field": "smb_message_echoes"}))
    assert batch.skipped == []
    (parsed,) = batch.messages
    assert (parsed.echo, parsed.wa_id, parsed.content) == (True, USER, "sent from the phone")


@pytest.mark.parametrize(
    ("system", "new"),
    [
        ({"body": "changed", "type": "user_changed_number", "wa_id": "16505559999"}, "16505559999"),
        (
            {"body": "changed", "type": "customer_changed_number", "new_wa_id": 16505559999},
            "16505559999",
        ),
        ({"body": "identity", "type": "customer_identity_changed", "identity": "x"}, None),
        ({"body": "changed", "type": "user_changed_number", "wa_id": USER}, None),
    ],
)
def test_a_number_change_names_the_new_number(system: dict[str, Any], new: str | None) -> None:
    (parsed,) = parse_webhook(_body(_change([_msg("system", system)]))).messages
    assert (parsed.type, parsed.new_wa_id) == ("SYSTEM", new)
