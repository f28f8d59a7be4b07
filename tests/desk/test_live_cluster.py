"""LiveDesk across nodes: two desks whose control messages reach each other, as the broker does.

Each node announces through its own recorder (in production both reach every socket through
the fan-out); the assertions count announcements over both, so "once for the cluster" is
checked, not just "once per node".
"""

from __future__ import annotations

from typing import Any

from _recorder import Recorder

from desk.live import LiveDesk

T, U1, U2, C = "t1", "u1", "u2", "c1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    """Nodes ``a`` and ``b`` (and more on demand) with one clock and a link between them."""

    def __init__(self, *names: str) -> None:
        self.clock = Clock()
        self.recorders: dict[str, Recorder] = {}
        self.nodes: dict[str, LiveDesk] = {}
        self.down: set[str] = set()
        for name in names:
            self.recorders[name] = Recorder()
            self.nodes[name] = LiveDesk(
                self.recorders[name],
                presence_grace=10,
                clock=self.clock,
                node=name,
                publish=self._publisher(name),
                snapshot_interval=10,
            )

    def _publisher(self, sender: str) -> Any:
        def publish(kind: str, data: Any) -> None:
            if sender in self.down:
                return
            for name, node in self.nodes.items():
                if name != sender and name not in self.down:
                    node.from_peer(sender, kind, data)

        return publish

    def tick(self, seconds: float = 0.0) -> None:
        self.clock.now += seconds
        for name, node in self.nodes.items():
            if name not in self.down:
                node.tick()

    def presence(self) -> list[tuple[str, str]]:
        return [
            (p["userId"], p["status"])
            for rec in self.recorders.values()
            for p in rec.named("presence:update")
        ]

    def viewers(self) -> list[list[str]]:
        return [
            [v["userId"] for v in p["viewers"]]
            for rec in self.recorders.values()
            for p in rec.named("conversation:viewers")
        ]


def test_tabs_on_two_nodes_count_once_and_closing_one_is_no_offline() -> None:
    cl = Cluster("a", "b")
    a, b = cl.nodes["a"], cl.nodes["b"]
    a.connected("s1", T, U1)
    b.connected("s2", T, U1)  # a second tab, on the other node
    assert cl.presence() == [(U1, "online")]
    a.disconnected("s1")
    cl.tick(30)  # far past the grace: the tab on b still holds them online
    assert cl.presence() == [(U1, "online")]
    assert a.roster(T)[U1]["status"] == "online" and b.roster(T)[U1]["status"] == "online"
    b.disconnected("s2")
    cl.tick(5)
    assert cl.presence() == [(U1, "online")]  # still within b's grace
    cl.tick(6)
    cl.tick(1)
    assert cl.presence() == [(U1, "online"), (U1, "offline")]
    assert a.roster(T)[U1]["status"] == "offline" and b.roster(T)[U1]["status"] == "offline"
    b.connected("s3", T, U1)
    assert cl.presence()[-1] == (U1, "online") and len(cl.presence()) == 3


def test_away_set_on_one_node_shows_on_the_other() -> None:
    cl = Cluster("a", "b")
    a, b = cl.nodes["a"], cl.nodes["b"]
    a.connected("s1", T, U1)
    b.connected("s2", T, U1)
    assert b.set_status("s2", "away")
    assert cl.presence() == [(U1, "online"), (U1, "away")]
    assert a.roster(T)[U1]["status"] == "away"
    b.disconnected("s2")
    cl.tick(30)
    assert cl.presence() == [(U1, "online"), (U1, "away")]  # a's tab keeps them (away)


def test_viewers_are_those_of_every_node_announced_once() -> None:
    cl = Cluster("a", "b")
    a, b = cl.nodes["a"], cl.nodes["b"]
    a.connected("s1", T, U1)
    b.connected("s2", T, U2)
    b.connected("s3", T, U1)
    a.joined("s1", C)
    b.joined("s2", C)
    assert cl.viewers() == [[U1], [U1, U2]]
    assert a.viewers(C) == b.viewers(C)
    b.joined("s3", C)  # U1 again, in another tab on b: no change to the set
    assert len(cl.viewers()) == 2
    a.left("s1", C)  # U1 still views on b
    assert len(cl.viewers()) == 2
    assert b.typing("s3", C, True)
    assert [v["typing"] for v in a.viewers(C) if v["userId"] == U1] == [True]
    b.left("s3", C)
    assert cl.viewers()[-1] == [U2]
    assert [v["userId"] for v in a.viewers(C)] == [U2]


def test_a_dead_nodes_agents_go_offline_announced_by_one_survivor() -> None:
    cl = Cluster("a", "b", "c")
    cl.nodes["c"].connected("s1", T, U1)
    cl.nodes["c"].joined("s1", C)
    cl.tick(0)  # snapshots
    assert cl.presence() == [(U1, "online")]
    cl.down.add("c")  # killed: it says nothing more
    cl.tick(20)
    assert cl.presence() == [(U1, "online")]
    for _ in range(4):
        cl.tick(5)  # a and b keep talking; c's word runs out after 35 s
    assert sorted(cl.presence()) == [(U1, "offline"), (U1, "online")]  # offline once, by a
    assert cl.recorders["a"].named("presence:update")[0]["status"] == "offline"
    assert [p["viewers"] for p in cl.recorders["a"].named("conversation:viewers")] == [[]]
    assert cl.nodes["a"].roster(T)[U1]["status"] == "offline"


def test_a_node_that_starts_late_learns_the_others_from_their_snapshot() -> None:
    cl = Cluster("a")
    cl.nodes["a"].connected("s1", T, U1)
    cl.nodes["a"].joined("s1", C)
    late = Recorder()
    b = LiveDesk(late, presence_grace=10, clock=cl.clock, node="b", publish=cl._publisher("b"))
    cl.recorders["b"], cl.nodes["b"] = late, b
    b.from_peer("a", "live:snapshot", cl.nodes["a"].snapshot())
    assert b.roster(T)[U1]["status"] == "online"
    assert [v["userId"] for v in b.viewers(C)] == [U1]
    b.connected("s2", T, U1)
    assert cl.presence() == [(U1, "online")]  # already online on a: nothing to announce


def test_bad_control_messages_change_nothing() -> None:
    cl = Cluster("a")
    a = cl.nodes["a"]
    for kind, data in [
        ("live:agent", {"userId": 1}),
        ("live:view", {"conversationId": None}),
        ("live:snapshot", {"agents": "x", "views": [1]}),
        ("live:agent", "not a dict"),
        ("unknown", {}),
    ]:
        a.from_peer("z", kind, data)
    assert a.roster(T) == {} and a.viewers(C) == []
