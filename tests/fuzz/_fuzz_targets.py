"""Fuzz targets: one function per decoder, each taking the raw bytes a fuzzer produced.

A target returns normally for every input the decoder handles as documented (decoded, or
refused with the one exception its contract names) and raises anything else: that is a
finding. The same functions serve the coverage-guided run (``tests/fuzz/fuzz.py``, atheris)
and the regression replay of ``tests/fuzz/corpus/`` under pytest.

Bytes become text the way a transport would hand it over: UTF-8, with lone surrogates let
through (``surrogatepass``) so the decoders also meet what a lenient client may send, and
Latin-1 for bytes that are not UTF-8 at all, so every byte string maps to some text.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import orjson

from desk.whatsapp import WebhookFormatError, load_json, parse_webhook
from engine.protocol import (
    NEED_DATA,
    AckReceived,
    ConnectRequest,
    DisconnectReceived,
    EioPacket,
    EventReceived,
    ProtocolError,
    SioConnection,
    SioDecoder,
    SioPacket,
    decode_payload,
    decode_ws,
    encode_payload,
    encode_sio,
    encode_ws,
)
from storage._sqlite_driver import stored_value
from storage._text import encode_json
from zapline.logs import JsonFormatter

_SQLITE = sqlite3.connect(":memory:")
_LOG_FORMAT = JsonFormatter()

# Splits one fuzz input into several websocket messages for the stateful targets.
MESSAGE_SEPARATOR = b"\xff"


def as_text(data: bytes) -> str:
    """Return ``data`` as text: UTF-8 (lone surrogates allowed), else Latin-1."""
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def as_messages(data: bytes) -> list[str | bytes]:
    """Split ``data`` into websocket messages: a chunk whose first byte is odd is binary."""
    out: list[str | bytes] = []
    for chunk in data.split(MESSAGE_SEPARATOR):
        if chunk[:1] and chunk[0] & 1:
            out.append(chunk[1:])
        else:
            out.append(as_text(chunk[1:]))
    return out


def eio_ws(data: bytes) -> None:
    """Decode one websocket frame's payload (text if the first byte is even, else binary).

    A decoded packet must encode back to the same frame payload.
    """
    message: str | bytes = as_text(data[1:]) if not data[:1] or data[0] % 2 == 0 else data[1:]
    try:
        packet = decode_ws(message)
    except ProtocolError:
        return
    assert isinstance(packet, EioPacket)
    assert encode_ws(packet) == message, (packet, message)


def eio_payload(data: bytes) -> None:
    """Decode one long-polling body; its packets must round-trip through encode_payload."""
    body = as_text(data)
    try:
        packets = decode_payload(body)
    except ProtocolError:
        return
    assert packets
    assert decode_payload(encode_payload(packets)) == packets


def _decode_all(decoder: SioDecoder, messages: list[str | bytes]) -> list[SioPacket]:
    packets = []
    for message in messages:
        packet = decoder.feed(message)
        if packet is not None:
            packets.append(packet)
    return packets


def sio_decoder(data: bytes) -> None:
    """Feed messages to one SioDecoder until it refuses one; each packet must round-trip.

    Round trip: the packet encoded again (text plus attachments) and fed to a fresh decoder
    gives an equal packet. Data nested deeper than the encoder writes (orjson's limit)
    may be refused with the TypeError ``encode_sio`` documents.
    """
    decoder = SioDecoder()
    for message in as_messages(data):
        try:
            packet = decoder.feed(message)
        except ProtocolError:
            return
        if packet is None:
            continue
        assert isinstance(packet, SioPacket)
        try:
            wire = encode_sio(packet)
        except TypeError:
            continue
        again = _decode_all(SioDecoder(), wire)
        assert again == [packet], (packet, wire, again)


_EVENTS = (ConnectRequest, EventReceived, AckReceived, DisconnectReceived)


def sio_connection(data: bytes) -> None:
    """Drive one SioConnection with messages, accepting or refusing each CONNECT.

    Only ProtocolError may come out; every event is one of the four documented types with
    the documented field types.
    """
    conn = SioConnection()
    for n, message in enumerate(as_messages(data)):
        try:
            conn.receive_message(message)
        except ProtocolError:
            return
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, _EVENTS), event
            assert isinstance(event.namespace, str) and event.namespace.startswith("/")
            if isinstance(event, EventReceived):
                assert isinstance(event.name, str), event
            if isinstance(event, ConnectRequest):
                assert event.auth is None or isinstance(event.auth, dict)
                if n % 2 == 0:
                    assert conn.accept(event.namespace, f"sid{n}")
                    assert conn.is_connected(event.namespace)
                else:
                    assert conn.refuse(event.namespace, "no")
                    assert not conn.is_connected(event.namespace)


def webhook(data: bytes) -> None:
    """Read one webhook body as intake and the worker do, up to what storage would bind.

    ``load_json`` may refuse with ValueError and ``parse_webhook`` with WebhookFormatError;
    anything else is a finding. Every parsed message's metadata and text must be what
    storage can bind (``encode_json`` and ``stored_value``), or a 200 would be answered for
    a body no worker can store; every skipped part's reason must log as one JSON line.
    """
    try:
        body = load_json(data)
    except ValueError:
        return
    try:
        batch = parse_webhook(body)
    except WebhookFormatError:
        return
    for message in batch.messages:
        assert isinstance(message.content, str)
        assert isinstance(message.whatsapp_message_id, str) and message.whatsapp_message_id
        encode_json(message.metadata)
        for value in (message.content, message.wa_id, message.contact_name):
            bound = stored_value(value)
            assert bound is None or isinstance(bound, str)
            if bound is not None:
                # SQLite refuses text that is not valid UTF-8 when it binds it.
                _SQLITE.execute("SELECT ?", (bound,)).fetchone()
    for status in batch.statuses:
        encode_json(status.errors)
    # The desk logs every skipped part; in production each log line is one JSON object.
    for reason in batch.skipped:
        record = logging.LogRecord("zapline.desk", logging.INFO, __file__, 0, "%s", (reason,), None)
        assert json.loads(_LOG_FORMAT.format(record))["msg"] == reason


TARGETS: dict[str, Callable[[bytes], Any]] = {
    "eio_ws": eio_ws,
    "eio_payload": eio_payload,
    "sio_decoder": sio_decoder,
    "sio_connection": sio_connection,
    "webhook": webhook,
}

# A few inputs per target to start the fuzzer from (written to the corpus on first run).
SEEDS: dict[str, list[bytes]] = {
    "eio_ws": [b"\x004hello", b"\x002probe", b"\x01\x00\x01binary", b"\x006"],
    "eio_payload": [b"4hello\x1e2\x1ebAQID", b"0{}", b"bAA=="],
    "sio_decoder": [
        b'\x002["message",{"a":1}]',
        b'\x00251-/admin,7["up",{"_placeholder":true,"num":0}]\xff\x01\x00\x01',
        b'\x003/chat,12["ok"]',
        b'\x000{"token":"x"}',
    ],
    "sio_connection": [
        b'\x000{"token":"t"}\xff\x002["conversation:join","c1"]\xff\x001',
        b'\x000/x,\xff\x000\xff\x002/x,["e"]\xff\x003/x,5[]',
    ],
    "webhook": [
        orjson.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "W",
                        "changes": [
                            {
                                "field": "messages",
                                "value": {
                                    "metadata": {"phone_number_id": "p"},
                                    "contacts": [{"profile": {"name": "N"}, "wa_id": "1"}],
                                    "messages": [
                                        {
                                            "from": "1",
                                            "id": "m",
                                            "timestamp": "1700000000",
                                            "type": "text",
                                            "text": {"body": "hi"},
                                        }
                                    ],
                                    "statuses": [
                                        {"id": "s", "status": "read", "timestamp": 1700000000}
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ),
        b'{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"p"},'
        b'"messages":[{"from":"1","id":"m","timestamp":"1","type":"location",'
        b'"location":{"latitude":1e400,"longitude":-0.0}}]}}]}]}',
        b'{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"p"},'
        b'"messages":[{"from":"1","id":"m","timestamp":"1","type":"text",'
        b'"text":{"body":"a\\u0000b\\ud800"}}]}}]}]}',
    ],
}
