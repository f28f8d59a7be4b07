"""Presence, typing and who is viewing: what agents see of each other, live.

Theory of operation
-------------------
Sockets come and go; agents are what the desk shows. Every state change lives in
``LiveDesk``'s methods, which the socket handlers call (``desk.sockets``), and every change an
agent could notice is announced once, when it happens:

* **Presence.** An agent is online in a tenant while at least one of their sockets is
  connected (tabs count once). ``presence:update`` goes to ``tenant:{id}`` only when the
  status changes. When the last socket leaves, the agent stays as they were for
  ``presence_grace`` seconds, so a reload or a short network drop is no offline/online flap;
  then ``offline``. ``away`` is the client's own (``presence:set``), until it says ``online``.
* **Typing.** ``typing:start`` / ``typing:stop`` become ``typing {conversationId, userId,
  isTyping}`` to ``conversation:{id}`` without the sender's own sockets. A start while already
  typing only extends it; a start after ``typing_interval`` seconds may announce again, so an
  agent's typing costs at most one broadcast per conversation per interval. The server ends a
  typing state by itself after ``typing_timeout`` seconds of silence, and when the agent's last
  socket leaves the conversation: "... is typing" never sticks.
* **Viewers.** A socket that joined ``conversation:{id}`` makes its agent a viewer of it;
  ``conversation:viewers {conversationId, viewers: [{userId, name, typing}]}`` goes to the room
  whenever the set of viewing agents changes, so two agents see that they are on the same
  customer before they both answer.

Time is the monotonic ``clock`` passed in; ``tick()`` (called by ``run()`` twice a second) ends
grace periods and silent typing.

Across nodes (``publish`` given: a broker joins several nodes), each node tells the others of
its agents' first and last sockets, statuses and views (``desk.peers``), and takes theirs
into account: an agent whose tab on this node closed stays online while they have a socket
on another node; the viewers of a conversation are those of every node; the node where a
change happens announces it, once, for the whole cluster. When a node dies its word expires,
and the first of the remaining nodes (by id) announces what that changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import anyio.abc

from desk.contract import conversation_room, iso, tenant_room, user_room
from desk.peers import Peers, best_status
from desk.ports import Emitter

__all__ = ["STATUSES", "LiveDesk"]


def _iso(seconds: float) -> str | None:
    return iso(datetime.fromtimestamp(seconds, UTC))


Status = Literal["online", "away", "offline"]
STATUSES: frozenset[str] = frozenset({"online", "away", "offline"})


@dataclass(slots=True)
class _Agent:
    # Kept small: one per connected agent, and a bench connects thousands.
    tenant_id: str
    user_id: str
    name: str | None = None
    sockets: int = 0
    status: Status = "offline"
    last_seen: float = 0.0  # wall-clock seconds
    offline_at: float | None = None  # monotonic end of the grace period


@dataclass(slots=True)
class _Typing:
    until: float  # monotonic: silent after this, typing ends
    announced_at: float


class LiveDesk:
    """One node's presence, typing and viewers, announced through ``emitter``."""

    def __init__(
        self,
        emitter: Emitter,
        *,
        presence_grace: float = 10.0,
        typing_timeout: float = 6.0,
        typing_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        node: str = "local",
        publish: Callable[[str, dict[str, Any]], None] | None = None,
        snapshot_interval: float = 10.0,
    ) -> None:
        self._emitter = emitter
        self.node = node
        # Control messages to the other nodes (``kind, data``); None: this node is alone.
        self._publish = publish
        self._snapshot_interval = snapshot_interval
        self._next_snapshot = 0.0
        self.peers = Peers(ttl=3.5 * snapshot_interval, clock=clock)
        self._grace = presence_grace
        self._typing_timeout = typing_timeout
        self._typing_interval = typing_interval
        self._clock = clock
        self._agents: dict[tuple[str, str], _Agent] = {}
        self._socket_agent: dict[str, tuple[str, str]] = {}
        # conversation id -> user id -> that user's sockets viewing it
        self._viewers: dict[str, dict[str, set[str]]] = {}
        self._socket_views: dict[str, set[str]] = {}
        self._typing: dict[tuple[str, str], _Typing] = {}  # (conversation, user)

    # -- sockets -------------------------------------------------------------------------------

    def connected(self, socket_id: str, tenant_id: str, user_id: str) -> None:
        """A socket of ``user_id`` authenticated: the agent is online (announced if new)."""
        key = (tenant_id, user_id)
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = _Agent(tenant_id, user_id)
        agent.sockets += 1
        agent.offline_at = None
        self._socket_agent[socket_id] = key
        if agent.status == "offline":
            elsewhere = self.peers.connected_elsewhere(tenant_id, user_id)
            if elsewhere is None:
                self._set_status(agent, "online")  # tells the other nodes too
                return
            agent.status = "away" if elsewhere.status == "away" else "online"
        if agent.sockets == 1:
            self._publish_agent(agent)

    def disconnected(self, socket_id: str) -> None:
        """A socket is gone: it stops viewing; its agent's last socket starts the grace."""
        for conversation_id in list(self._socket_views.get(socket_id, ())):
            self.left(socket_id, conversation_id)
        self._socket_views.pop(socket_id, None)
        key = self._socket_agent.pop(socket_id, None)
        if key is None:
            return
        agent = self._agents[key]
        agent.sockets -= 1
        agent.last_seen = time.time()
        if not agent.sockets:
            agent.offline_at = self._clock() + self._grace
            self._publish_agent(agent)

    def set_status(self, socket_id: str, status: str) -> bool:
        """The client says ``online`` or ``away``; return False for anything else."""
        key = self._socket_agent.get(socket_id)
        if key is None or status not in ("online", "away"):
            return False
        agent = self._agents[key]
        if agent.status != status:
            self._set_status(agent, "away" if status == "away" else "online")
        return True

    def needs_name(self, socket_id: str) -> str | None:
        """The user id of the socket's agent when their name is not known yet, else None."""
        key = self._socket_agent.get(socket_id)
        agent = None if key is None else self._agents.get(key)
        return agent.user_id if agent is not None and agent.name is None else None

    def set_name(self, socket_id: str, name: str | None) -> None:
        """The name other agents see for the socket's agent (looked up when first needed)."""
        key = self._socket_agent.get(socket_id)
        if key is not None and name:
            self._agents[key].name = name

    # -- viewers -------------------------------------------------------------------------------

    def joined(self, socket_id: str, conversation_id: str) -> None:
        """A socket joined a conversation's room: its agent views it (announced if new)."""
        key = self._socket_agent.get(socket_id)
        if key is None:
            return
        self._socket_views.setdefault(socket_id, set()).add(conversation_id)
        viewing = self._viewers.setdefault(conversation_id, {})
        sockets = viewing.setdefault(key[1], set())
        first = not sockets
        sockets.add(socket_id)
        if first:
            self._publish_view(conversation_id, key[1], viewing=True)
            if key[1] not in self.peers.viewers(conversation_id):
                self._announce_viewers(conversation_id)

    def left(self, socket_id: str, conversation_id: str) -> None:
        """A socket left a conversation's room: its agent's last one ends viewing and typing."""
        key = self._socket_agent.get(socket_id)
        views = self._socket_views.get(socket_id)
        if views is not None:
            views.discard(conversation_id)
        viewing = self._viewers.get(conversation_id)
        if key is None or viewing is None or key[1] not in viewing:
            return
        user_id = key[1]
        viewing[user_id].discard(socket_id)
        if viewing[user_id]:
            return
        del viewing[user_id]
        if (conversation_id, user_id) in self._typing:
            self._stop_typing(conversation_id, user_id, publish=False)
        if not viewing:
            del self._viewers[conversation_id]
        self._publish_view(conversation_id, user_id, viewing=False)
        if user_id not in self.peers.viewers(conversation_id):
            self._announce_viewers(conversation_id)

    def viewers(self, conversation_id: str) -> list[dict[str, Any]]:
        """The agents viewing a conversation: ``[{userId, name, typing}]``, by user id."""
        viewing = self._viewers.get(conversation_id, {})
        remote = self.peers.viewers(conversation_id)
        out = []
        for user_id in sorted(viewing.keys() | remote.keys()):
            name, typing = remote.get(user_id, (None, False))
            if user_id in viewing:
                socket_id = next(iter(viewing[user_id]))
                agent = self._agents.get(self._socket_agent.get(socket_id, ("", "")))
                name = agent.name if agent is not None and agent.name else name
                typing = typing or (conversation_id, user_id) in self._typing
            out.append({"userId": user_id, "name": name, "typing": typing})
        return out

    # -- typing --------------------------------------------------------------------------------

    def typing(self, socket_id: str, conversation_id: str, is_typing: bool) -> bool:
        """The socket's agent starts or stops typing in a conversation it views.

        Returns False (nothing announced) when the socket does not view that conversation.
        """
        key = self._socket_agent.get(socket_id)
        if key is None or conversation_id not in self._socket_views.get(socket_id, ()):
            return False
        user_id = key[1]
        now = self._clock()
        state = self._typing.get((conversation_id, user_id))
        if not is_typing:
            if state is not None:
                self._stop_typing(conversation_id, user_id)
            return True
        if state is None:
            self._typing[(conversation_id, user_id)] = _Typing(now + self._typing_timeout, now)
            self._announce_typing(conversation_id, user_id, True)
            self._publish_view(conversation_id, user_id, viewing=True)
            return True
        state.until = now + self._typing_timeout
        if now - state.announced_at >= self._typing_interval:
            state.announced_at = now
            self._announce_typing(conversation_id, user_id, True)
        return True

    # -- the roster and the clock ---------------------------------------------------------------

    def roster(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """Every agent of a tenant this node has seen: user id -> ``{status, lastSeenAt}``."""
        # (connected?, status, last seen) from every node that knows the agent
        seen: dict[str, list[tuple[bool, str, float]]] = {}
        for user_id, reports in self.peers.tenant_agents(tenant_id).items():
            seen[user_id] = [(r.connected, r.status, r.last_seen) for r in reports]
        for (tenant, user_id), agent in self._agents.items():
            if tenant == tenant_id:
                here = (agent.sockets > 0, agent.status, agent.last_seen)
                seen.setdefault(user_id, []).append(here)
        out: dict[str, dict[str, Any]] = {}
        for user_id, reports in seen.items():
            # Where they have a socket counts; with none anywhere, a grace period may still run.
            connected = [r for r in reports if r[0]] or reports
            out[user_id] = {
                "status": best_status(r[1] for r in connected),
                "lastSeenAt": _iso(max(r[2] for r in reports)),
            }
        return out

    def tick(self) -> None:
        """End the grace periods and the silent typing that are due."""
        now = self._clock()
        for (conversation_id, user_id), state in list(self._typing.items()):
            if state.until <= now:
                self._stop_typing(conversation_id, user_id)
        for agent in list(self._agents.values()):
            if agent.offline_at is not None and agent.offline_at <= now and not agent.sockets:
                agent.offline_at = None
                if agent.status == "offline":
                    continue
                if self.peers.connected_elsewhere(agent.tenant_id, agent.user_id) is None:
                    self._set_status(agent, "offline")
                # else: online on another node, which announces when they leave it too
        if self._publish is not None:
            self._expire_peers()
            if now >= self._next_snapshot:
                self._next_snapshot = now + self._snapshot_interval
                self._publish("live:snapshot", self.snapshot())

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Call ``tick()`` twice a second until cancelled (first asking the others' state)."""
        if self._publish is not None:
            self._publish("live:hello", {})
        task_status.started()
        while True:
            await anyio.sleep(0.5)
            self.tick()

    # -- announcements -------------------------------------------------------------------------

    def _set_status(self, agent: _Agent, status: Status) -> None:
        agent.status = status
        agent.last_seen = time.time()
        self._publish_agent(agent)
        self._emitter.emit(
            "presence:update",
            {"userId": agent.user_id, "status": status, "lastSeenAt": _iso(agent.last_seen)},
            to=tenant_room(agent.tenant_id),
            skip=user_room(agent.user_id),  # an agent's own tabs know
        )

    def _stop_typing(self, conversation_id: str, user_id: str, *, publish: bool = True) -> None:
        del self._typing[(conversation_id, user_id)]
        self._announce_typing(conversation_id, user_id, False)
        if publish:
            self._publish_view(conversation_id, user_id, viewing=True)

    def _announce_typing(self, conversation_id: str, user_id: str, is_typing: bool) -> None:
        self._emitter.emit(
            "typing",
            {"conversationId": conversation_id, "userId": user_id, "isTyping": is_typing},
            to=conversation_room(conversation_id),
            skip=user_room(user_id),
        )

    def _announce_viewers(self, conversation_id: str) -> None:
        self._emitter.emit(
            "conversation:viewers",
            {"conversationId": conversation_id, "viewers": self.viewers(conversation_id)},
            to=conversation_room(conversation_id),
        )

    # -- the other nodes -------------------------------------------------------------------------

    def _publish_agent(self, agent: _Agent) -> None:
        if self._publish is not None:
            self._publish("live:agent", _agent_report(agent))

    def _publish_view(self, conversation_id: str, user_id: str, *, viewing: bool) -> None:
        if self._publish is None:
            return
        report: dict[str, Any] = {"conversationId": conversation_id, "userId": user_id}
        if viewing:
            sockets = self._viewers.get(conversation_id, {}).get(user_id) or {""}
            agent = self._agents.get(self._socket_agent.get(next(iter(sockets)), ("", "")))
            report.update(
                viewing=True,
                name=agent.name if agent is not None else None,
                typing=(conversation_id, user_id) in self._typing,
            )
        self._publish("live:view", report)

    def snapshot(self) -> dict[str, Any]:
        """This node's agents and views, as the other nodes keep them (``live:snapshot``)."""
        agents = [
            _agent_report(a) for a in self._agents.values() if a.sockets or a.status != "offline"
        ]
        views = []
        for conversation_id, users in self._viewers.items():
            for user_id in users:
                agent = self._agents.get(
                    self._socket_agent.get(next(iter(users[user_id])), ("", ""))
                )
                views.append(
                    {
                        "conversationId": conversation_id,
                        "userId": user_id,
                        "name": agent.name if agent is not None else None,
                        "typing": (conversation_id, user_id) in self._typing,
                    }
                )
        return {"agents": agents, "views": views}

    def from_peer(self, node: str, kind: str, data: Any) -> None:
        """Take in one control message of another node (``desk.peers``); never raises on bad data."""
        if node == self.node or not isinstance(data, dict):
            return
        if kind == "live:agent":
            key = self.peers.agent(node, data)
            agent = None if key is None else self._agents.get(key)
            if agent is not None and not agent.sockets:
                # They are not here: show what the node they are on says (it announced it).
                reported = self.peers.connected_elsewhere(*agent_key(agent))
                if reported is not None:
                    agent.status = "away" if reported.status == "away" else "online"
                elif data.get("status") == "offline" and agent.status != "offline":
                    agent.status, agent.offline_at = "offline", None
                    self._publish_agent(agent)  # so no node keeps our stale "online"
            elif (
                agent is not None
                and data.get("connected")
                and data.get("status") in ("online", "away")
            ):
                agent.status = data["status"]  # presence:set on their tab over there
        elif kind == "live:view":
            self.peers.view(node, data)
        elif kind == "live:snapshot":
            self.peers.snapshot(node, data)
        elif kind == "live:hello" and self._publish is not None:
            self.peers.heard(node)
            self._next_snapshot = 0.0  # at the next tick: a node just started

    def _expire_peers(self) -> None:
        gone, agents, conversations = self.peers.expire()
        if not gone:
            return
        leader = min([self.node, *self.peers.nodes()])
        if leader != self.node:
            return  # the first live node announces, once for the cluster
        for tenant_id, user_id in agents:
            if self.peers.connected_elsewhere(tenant_id, user_id) is not None:
                continue
            agent = self._agents.get((tenant_id, user_id))
            if agent is None:
                agent = self._agents[(tenant_id, user_id)] = _Agent(
                    tenant_id, user_id, status="online"
                )
            if not agent.sockets and agent.status != "offline":
                self._set_status(agent, "offline")
        for conversation_id in conversations:
            self._announce_viewers(conversation_id)


def agent_key(agent: _Agent) -> tuple[str, str]:
    """An agent's (tenant id, user id)."""
    return agent.tenant_id, agent.user_id


def _agent_report(agent: _Agent) -> dict[str, Any]:
    return {
        "tenantId": agent.tenant_id,
        "userId": agent.user_id,
        "connected": agent.sockets > 0,
        "status": agent.status,
        "lastSeen": agent.last_seen,
        "name": agent.name,
    }
