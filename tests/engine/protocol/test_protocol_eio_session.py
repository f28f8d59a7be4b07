"""EioSession: the Engine.IO session state machine, driven by packets and time alone."""

from __future__ import annotations

import math

import pytest

from engine.protocol import (
    NOOP,
    PONG_PROBE,
    ClientPing,
    EioPacket,
    EioPacketType,
    EioSession,
    EioState,
    MessageReceived,
    PollRefused,
    ProtocolError,
    SessionClosed,
    decode_payload,
)

T = EioPacketType


def polling(now: float = 0.0) -> EioSession:
    return EioSession("sid", now, ping_interval=25.0, ping_timeout=20.0)


def packet(kind: EioPacketType, data: str | bytes = "") -> EioPacket:
    return EioPacket(kind, data)


# -- heartbeat ---------------------------------------------------------------------------------


def test_first_ping_is_due_one_interval_after_open() -> None:
    session = polling(now=100.0)
    assert session.deadline == 125.0
    assert session.tick(124.999).send is None
    tick = session.tick(125.0)
    assert (tick.send, tick.timed_out) == ("2", False)
    assert session.deadline == 145.0  # now the pong clock


def test_pong_clock_starts_when_the_ping_was_due() -> None:
    session = polling()
    session.tick(26.0)  # the host's timer ran a second late
    assert session.deadline == 45.0  # open + interval + timeout, as the client counts
    late = polling()
    late.tick(40.0)  # very late: the client still gets half of pingTimeout
    assert late.deadline == 50.0


def test_sessions_keep_their_own_schedule() -> None:
    early, late = polling(now=0.0), polling(now=10.0)
    assert early.tick(25.0).send == "2"
    assert late.tick(25.0).send is None
    assert late.tick(35.0).send == "2"


def test_pong_restarts_the_interval_from_its_arrival() -> None:
    session = polling()
    session.tick(25.0)
    assert session.receive(packet(T.PONG), 30.0) is None
    assert session.deadline == 55.0
    assert session.tick(45.0).send is None  # the old pong deadline is gone
    assert session.tick(55.0).send == "2"


def test_missing_pong_times_the_session_out() -> None:
    session = polling()
    session.tick(25.0)
    assert session.tick(44.9) == session.tick(44.9) and not session.tick(44.9).timed_out
    tick = session.tick(45.0)
    assert tick.timed_out and tick.send is None
    assert session.state is EioState.CLOSED and session.close_reason == "ping timeout"
    assert session.deadline == math.inf
    assert not session.tick(100.0).timed_out  # reported once


def test_unsolicited_pong_changes_nothing() -> None:
    session = polling()
    session.receive(packet(T.PONG), 10.0)
    assert session.deadline == 25.0


def test_expire_closes_a_session_past_its_pong_deadline_without_a_timer() -> None:
    session = polling()
    session.tick(25.0)
    assert not session.expire(44.0)
    assert session.expire(45.5)
    assert session.close_reason == "ping timeout"


# -- packets from the client -------------------------------------------------------------------


def test_message_and_ping_and_noop() -> None:
    session = polling()
    assert session.receive(packet(T.MESSAGE, "hello"), 1.0) == MessageReceived("hello")
    assert session.receive(packet(T.MESSAGE, b"\x01"), 1.0) == MessageReceived(b"\x01")
    assert session.receive(packet(T.PING, "x"), 1.0) == ClientPing("3x")
    assert session.receive(packet(T.NOOP), 1.0) is None


@pytest.mark.parametrize("kind", [T.OPEN, T.UPGRADE])
def test_packets_a_client_never_sends_are_errors(kind: EioPacketType) -> None:
    with pytest.raises(ProtocolError):
        polling().receive(packet(kind), 1.0)


def test_close_packet_ends_the_session() -> None:
    session = polling()
    assert session.receive(packet(T.CLOSE), 1.0) == SessionClosed("client close")
    assert session.closed
    with pytest.raises(ProtocolError):
        session.receive(packet(T.MESSAGE, "late"), 1.0)


# -- long-polling ------------------------------------------------------------------------------


def test_poll_answers_queued_packets_through_the_codec() -> None:
    session = polling()
    assert session.start_poll(1.0) is None
    assert not session.poll_ready()
    assert session.enqueue(['42["a"]', b"\x00\x01", "2"])
    assert session.poll_ready()
    body = session.finish_poll()
    assert body == '42["a"]\x1ebAAE=\x1e2'
    assert decode_payload(body) == [
        EioPacket(T.MESSAGE, '2["a"]'),
        EioPacket(T.MESSAGE, b"\x00\x01"),
        EioPacket(T.PING, ""),
    ]
    assert session.queue == [] and session.queued_bytes == 0 and not session.polling


def test_enqueue_past_the_limit_reports_a_slow_consumer() -> None:
    session = polling()
    assert session.enqueue(["4" + "x" * 10], limit=20)
    assert not session.enqueue(["4" + "x" * 10], limit=20)


def test_second_parked_poll_closes_the_session() -> None:
    session = polling()
    assert session.start_poll(1.0) is None
    assert session.start_poll(1.0) is PollRefused.DUPLICATE
    assert session.close_reason == "transport error"
    assert session.poll_ready()
    assert session.finish_poll() == "1"  # the first poll learns the session is over


def test_poll_after_the_pong_deadline_finds_the_session_closed() -> None:
    """Issue 10, behaviour 1: whatever a timer did, the late poll is refused."""
    session = polling()
    session.tick(25.0)  # ping queued; the client never answers
    assert session.start_poll(45.0) is PollRefused.CLOSED
    assert session.close_reason == "ping timeout"


def test_poll_on_a_websocket_session_is_refused() -> None:
    session = EioSession("s", 0.0, ping_interval=1.0, ping_timeout=1.0, websocket=True)
    assert session.start_poll(0.5) is PollRefused.NOT_POLLING


def test_client_close_answers_a_parked_poll_with_a_noop() -> None:
    session = polling()
    session.start_poll(1.0)
    session.receive(packet(T.CLOSE), 1.0)
    assert session.poll_ready() and session.finish_poll() == NOOP
    assert session.start_poll(1.0) is PollRefused.CLOSED


def test_poll_racing_the_client_close_gets_one_noop() -> None:
    """Issue 10, behaviour 4: the POST with "1" overtook the GET."""
    session = polling()
    session.receive(packet(T.CLOSE), 1.0)
    assert session.owes_noop
    assert session.start_poll(1.0) is None
    assert session.finish_poll() == NOOP
    assert session.start_poll(1.0) is PollRefused.CLOSED


def test_server_close_adds_a_close_packet_after_what_was_queued() -> None:
    session = polling()
    session.enqueue(['42["bye"]'])
    session.start_poll(1.0)
    assert session.close("server shutdown")
    assert not session.close("again")
    assert session.finish_poll() == '42["bye"]\x1e1'


# -- probe and upgrade -------------------------------------------------------------------------


def test_upgrade_moves_the_queue_onto_the_websocket() -> None:
    session = polling()
    session.enqueue(['42["queued"]'])
    assert session.attach_probe()
    assert not session.attach_probe()  # one probe at a time
    assert session.state is EioState.PROBING
    assert session.receive_probe(packet(T.PING, "probe")) == PONG_PROBE
    assert session.state is EioState.UPGRADING
    assert session.start_poll(1.0) is None
    assert session.poll_ready()  # answered at once so the client can pause polling
    assert session.finish_poll() == '42["queued"]'
    session.enqueue(["2"])
    assert session.receive_probe(packet(T.UPGRADE)) == ["2"]
    assert session.on_websocket and session.queue == []
    assert not session.attach_probe()  # upgraded: a later websocket with this sid is refused


def test_parked_poll_is_answered_with_a_noop_by_the_upgrade() -> None:
    session = polling()
    session.attach_probe()
    session.start_poll(1.0)
    session.receive_probe(packet(T.PING, "probe"))
    session.receive_probe(packet(T.UPGRADE))
    assert session.poll_ready() and session.finish_poll() == NOOP


def test_failed_probe_returns_to_polling() -> None:
    session = polling()
    session.attach_probe()
    session.receive_probe(packet(T.PING, "probe"))
    session.probe_failed()
    assert session.state is EioState.POLLING
    assert session.attach_probe()


@pytest.mark.parametrize(
    "steps",
    [
        [packet(T.UPGRADE)],  # 5 before 2probe
        [packet(T.PING, "nope")],
        [packet(T.MESSAGE, "2")],
        [packet(T.PING, "probe"), packet(T.PING, "probe")],
    ],
)
def test_probe_packets_out_of_order_are_errors(steps: list[EioPacket]) -> None:
    session = polling()
    session.attach_probe()
    with pytest.raises(ProtocolError):
        for step in steps:
            session.receive_probe(step)
