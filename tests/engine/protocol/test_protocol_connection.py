"""SioConnection: the per-session Socket.IO state machine, driven with wire text."""

from __future__ import annotations

import pytest

from engine.protocol import (
    NEED_DATA,
    AckReceived,
    ConnectRequest,
    DisconnectReceived,
    EventReceived,
    ProtocolError,
    SioConnection,
    SioEvent,
)

PH0 = '{"_placeholder":true,"num":0}'


def feed(conn: SioConnection, *messages: str | bytes) -> list[SioEvent]:
    """Feed ``messages`` and drain every event they produced."""
    for message in messages:
        conn.receive_message(message)
    events: list[SioEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def connected(namespace: str = "/") -> SioConnection:
    conn = SioConnection()
    wire = "0" if namespace == "/" else f"0{namespace},"
    assert feed(conn, wire) == [ConnectRequest(namespace, None)]
    conn.accept(namespace, "sid-1")
    return conn


def test_connect_accept_sequence() -> None:
    conn = SioConnection()
    assert conn.next_event() is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"
    assert feed(conn, '0{"token":"jwt"}') == [ConnectRequest("/", {"token": "jwt"})]
    assert not conn.is_connected("/")
    assert conn.namespaces == frozenset()
    assert conn.accept("/", "wZX3oN0bSVIhsaknAAAI") == ['0{"sid":"wZX3oN0bSVIhsaknAAAI"}']
    assert conn.is_connected("/")
    assert conn.namespaces == frozenset({"/"})


def test_accept_with_a_recovery_pid() -> None:
    conn = SioConnection()
    feed(conn, '0/admin,{"pid":"p-1","offset":"7"}')
    reply = conn.accept("/admin", "s-2", pid="p-2")
    assert reply == ['0/admin,{"sid":"s-2","pid":"p-2"}']  # sid first, as socket.io sends it


def test_events_and_acks_after_accept() -> None:
    conn = connected()
    assert feed(conn, '2["conversation:join","c1"]', '212["typing",{"on":true}]', '37["ok"]') == [
        EventReceived("/", "conversation:join", ("c1",), None),
        EventReceived("/", "typing", ({"on": True},), 12),
        AckReceived("/", 7, ("ok",)),
    ]


def test_binary_event_waits_for_its_attachment() -> None:
    conn = connected()
    assert feed(conn, f'51-3["upload",{PH0}]') == []
    assert feed(conn, b"\x89PNG") == [EventReceived("/", "upload", (b"\x89PNG",), 3)]
    assert feed(conn, f"61-4[{PH0}]", b"\x00") == [AckReceived("/", 4, (b"\x00",))]


def test_packets_for_unconnected_namespaces_are_dropped() -> None:
    conn = SioConnection()
    assert feed(conn, '2["early"]', "35[]", '2/admin,["x"]', "1", "1/admin,") == []
    conn = connected()
    assert feed(conn, '2/other,["x"]', "3/other,1[]", f'51-/other,["x",{PH0}]', b"a") == []
    assert feed(conn, '2["still here"]') == [EventReceived("/", "still here", (), None)]


def test_client_disconnect_closes_namespace() -> None:
    conn = connected()
    assert feed(conn, "1") == [DisconnectReceived("/")]
    assert not conn.is_connected("/")
    assert feed(conn, '2["late"]', "1") == []
    assert conn.disconnect("/") == []
    # The client may join again after leaving.
    assert feed(conn, "0") == [ConnectRequest("/", None)]


def test_disconnect_while_pending_tells_the_runtime() -> None:
    conn = SioConnection()
    assert feed(conn, "0/admin,", "1/admin,") == [
        ConnectRequest("/admin", None),
        DisconnectReceived("/admin"),
    ]
    assert feed(conn, "0/admin,") == [ConnectRequest("/admin", None)]


def test_duplicate_connect_is_an_error() -> None:
    conn = SioConnection()
    conn.receive_message("0")
    with pytest.raises(ProtocolError, match="second CONNECT"):
        conn.receive_message("0")
    conn.accept("/", "s")
    with pytest.raises(ProtocolError, match="second CONNECT"):
        conn.receive_message('0{"token":"again"}')


def test_client_connect_error_is_an_error() -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match="CONNECT_ERROR"):
        conn.receive_message('4{"message":"no"}')


def test_malformed_input_raises() -> None:
    conn = connected()
    for bad in ("2[]", "3[]", "9", b"\x00", '2["x"'):
        with pytest.raises(ProtocolError):
            conn.receive_message(bad)
    assert feed(conn) == []


def test_refuse() -> None:
    conn = SioConnection()
    feed(conn, "0")
    assert conn.refuse("/", "Not authorized") == ['4{"message":"Not authorized"}']
    assert not conn.is_connected("/")
    feed(conn, "0/admin,")
    assert conn.refuse("/admin", "expired", {"code": 401}) == [
        '4/admin,{"message":"expired","data":{"code":401}}'
    ]
    # A refused client may retry with new credentials.
    assert feed(conn, '0{"token":"fresh"}') == [ConnectRequest("/", {"token": "fresh"})]


def test_accept_and_refuse_misuse() -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match="already connected"):
        conn.accept("/", "again")
    with pytest.raises(ProtocolError, match="connected"):
        conn.refuse("/", "too late")
    with pytest.raises(ProtocolError):
        SioConnection().accept("bad", "s")


def test_emit_and_ack() -> None:
    conn = connected("/admin")
    assert conn.emit("/admin", "message:new", [{"id": 1}]) == ['2/admin,["message:new",{"id":1}]']
    assert conn.emit("/admin", "ping", [], ack_id=13) == ['2/admin,13["ping"]']
    assert conn.emit("/admin", "file", [b"\x01"]) == [f'51-/admin,["file",{PH0}]', b"\x01"]
    assert conn.ack("/admin", 12, []) == ["3/admin,12[]"]
    assert conn.ack("/admin", 15, ["bar", b"\x02"]) == [f'61-/admin,15["bar",{PH0}]', b"\x02"]
    assert conn.emit("/", "nobody", []) == []
    assert conn.ack("/", 1, []) == []


def test_server_disconnect() -> None:
    conn = connected()
    assert conn.disconnect("/") == ["1"]
    assert not conn.is_connected("/")
    assert conn.emit("/", "x", []) == []
    assert conn.disconnect("/") == []
    assert feed(conn, '2["x"]') == []


def test_namespaces_are_independent() -> None:
    conn = connected()
    assert feed(conn, "0/admin,") == [ConnectRequest("/admin", None)]
    conn.accept("/admin", "sid-2")
    assert conn.namespaces == frozenset({"/", "/admin"})
    assert feed(conn, "1/admin,", '2["on root"]', '2/admin,["gone"]') == [
        DisconnectReceived("/admin"),
        EventReceived("/", "on root", (), None),
    ]
    assert conn.namespaces == frozenset({"/"})


def test_one_polling_payload_yields_events_in_order() -> None:
    conn = connected()
    conn.receive_message('2["hello"]')
    conn.receive_message('2["world"]')
    assert conn.next_event() == EventReceived("/", "hello", (), None)
    assert conn.next_event() == EventReceived("/", "world", (), None)
    assert conn.next_event() is NEED_DATA
