"""LiveDesk: presence, viewers and typing, driven with a hand-moved clock (no sleeping)."""

from __future__ import annotations

from _recorder import Recorder

from desk.live import LiveDesk

T, U1, U2 = "t1", "u1", "u2"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_desk() -> tuple[LiveDesk, Recorder, Clock]:
    recorder, clock = Recorder(), Clock()
    return LiveDesk(recorder, presence_grace=10, clock=clock), recorder, clock


def names(recorder: Recorder) -> list[str]:
    return [name for name, _, _ in recorder.events]


def test_tabs_count_once_and_a_reload_is_no_flap() -> None:
    live, rec, clock = live_desk()
    live.connected("s1", T, U1)
    live.connected("s2", T, U1)  # a second tab
    assert [(p["userId"], p["status"]) for p in rec.named("presence:update")] == [(U1, "online")]
    assert rec.events[0][2] == (f"tenant:{T}",) and rec.skipped[0] == (f"user:{U1}",)
    live.disconnected("s1")
    live.disconnected("s2")
    clock.now += 9
    live.tick()
    live.connected("s3", T, U1)  # the reload came back within the grace
    clock.now += 60
    live.tick()
    assert len(rec.named("presence:update")) == 1
    live.disconnected("s3")
    clock.now += 10
    live.tick()
    live.tick()
    assert [p["status"] for p in rec.named("presence:update")] == ["online", "offline"]
    assert live.roster(T)[U1]["status"] == "offline"
    assert live.roster("other") == {}


def test_away_is_the_clients_own_and_announced_on_change_only() -> None:
    live, rec, _ = live_desk()
    live.connected("s1", T, U1)
    assert live.set_status("s1", "away") and live.set_status("s1", "away")
    assert live.set_status("s1", "online")
    assert not live.set_status("s1", "offline") and not live.set_status("nobody", "away")
    assert [p["status"] for p in rec.named("presence:update")] == ["online", "away", "online"]


def test_viewers_change_when_an_agent_starts_or_stops_viewing() -> None:
    live, rec, _ = live_desk()
    live.connected("a1", T, U1)
    live.connected("a2", T, U1)
    live.connected("b1", T, U2)
    assert live.needs_name("a1") == U1
    live.set_name("a1", "Ana")
    assert live.needs_name("a2") is None  # the agent's, whichever tab asked
    live.joined("a1", "c1")
    live.joined("a2", "c1")  # the same agent in another tab: no change
    live.joined("b1", "c1")
    live.left("a1", "c1")  # Ana still views it from her other tab
    live.disconnected("a2")
    views = rec.named("conversation:viewers")
    assert [[v["userId"] for v in e["viewers"]] for e in views] == [[U1], [U1, U2], [U2]]
    assert views[1]["viewers"] == [
        {"userId": U1, "name": "Ana", "typing": False},
        {"userId": U2, "name": None, "typing": False},
    ]
    assert all(
        to == ("conversation:c1",) for name, _, to in rec.events if name != "presence:update"
    )


def test_typing_is_throttled_and_never_sticks() -> None:
    live, rec, clock = live_desk()
    live.connected("a1", T, U1)
    assert not live.typing("a1", "c1", True), "typing where the socket does not view"
    live.joined("a1", "c1")
    assert live.typing("a1", "c1", True)
    clock.now += 1
    live.typing("a1", "c1", True)  # within 2 s: extends, no broadcast
    clock.now += 1.5
    live.typing("a1", "c1", True)  # 2.5 s after the first: one more
    assert [p["isTyping"] for p in rec.named("typing")] == [True, True]
    assert live.viewers("c1")[0]["typing"] is True
    clock.now += 5.9
    live.tick()
    assert len(rec.named("typing")) == 2
    clock.now += 0.2  # 6 s of silence
    live.tick()
    assert [p["isTyping"] for p in rec.named("typing")] == [True, True, False]
    typing_events = [i for i, (name, _, _) in enumerate(rec.events) if name == "typing"]
    assert all(rec.skipped[i] == (f"user:{U1}",) for i in typing_events)

    live.typing("a1", "c1", True)
    live.disconnected("a1")  # the last socket leaves: typing ends with it
    assert [p["isTyping"] for p in rec.named("typing")][-2:] == [True, False]
    assert live.typing("a1", "c1", False) is False


def test_stop_without_start_announces_nothing() -> None:
    live, rec, _ = live_desk()
    live.connected("a1", T, U1)
    live.joined("a1", "c1")
    assert live.typing("a1", "c1", False)
    assert rec.named("typing") == []
