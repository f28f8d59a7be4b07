"""The heartbeat heap: each session is handled at its own deadline, once, and never spins."""

from __future__ import annotations

from engine import EngineSession
from engine._heartbeat import Heartbeat
from engine.protocol import EioPacket, EioPacketType, EioSession


def _session(sid: str, opened: float) -> EngineSession:
    eio = EioSession(sid, opened, ping_interval=1.0, ping_timeout=1.0)
    return EngineSession(eio, "test", limit=1 << 20, on_overflow=lambda s: None)


def test_sessions_are_due_at_their_own_time() -> None:
    seen: list[tuple[str, float, str | None]] = []

    def on_due(session: EngineSession, now: float) -> None:
        seen.append((session.sid, now, session.eio.tick(now).send))

    heartbeat = Heartbeat(on_due)
    a, b = _session("a", 0.0), _session("b", 0.5)
    heartbeat.schedule(a)
    heartbeat.schedule(b)
    heartbeat.run_due(0.9)
    assert seen == []
    heartbeat.run_due(1.0)
    assert seen == [("a", 1.0, "2")]
    heartbeat.run_due(1.5)
    assert seen[1:] == [("b", 1.5, "2")]


def test_a_session_is_never_early_and_handled_once() -> None:
    calls: list[float] = []

    def on_due(session: EngineSession, now: float) -> None:
        calls.append(now)
        session.eio.tick(now)

    heartbeat = Heartbeat(on_due)
    session = _session("a", 0.301)  # due at 1.301: its bucket is 1.31
    heartbeat.schedule(session)
    heartbeat.run_due(1.3)
    assert calls == []
    heartbeat.run_due(1.31)
    heartbeat.run_due(1.31)  # nothing left to do at this time: not called again
    assert calls == [1.31]
    assert 2.31 <= session.scheduled_at < 2.33  # now the pong deadline's bucket


def test_a_deadline_moved_later_is_rescheduled_not_lost() -> None:
    calls: list[float] = []

    def on_due(session: EngineSession, now: float) -> None:
        calls.append(now)
        session.eio.tick(now)

    heartbeat = Heartbeat(on_due)
    session = _session("a", 0.0)
    heartbeat.schedule(session)
    heartbeat.run_due(1.0)  # ping
    session.eio.receive(EioPacket(EioPacketType.PONG), 1.5)  # next ping at 2.5
    heartbeat.run_due(2.0)  # the old pong deadline comes up: nothing to do
    assert not session.closed and 2.5 <= session.scheduled_at < 2.52
    heartbeat.run_due(2.52)
    assert calls == [1.0, 2.0, 2.52]
    assert len(heartbeat) == 1  # just the pong deadline of the second ping
