"""What the other nodes report of their agents: presence and viewers across a cluster.

With several nodes (``REDIS_URL``) an agent's tabs may sit on different nodes, and two agents
viewing one customer may too. Each node keeps its own sockets (``desk.live``) and tells the
others, through the broker's control messages, only what they need to show the agent right:

* ``live:agent`` when one of its agents gains their first or loses their last socket on it,
  or changes status;
* ``live:view`` when an agent starts or stops viewing (or typing in) a conversation on it;
* ``live:snapshot`` every few seconds: everything it holds, replacing what was known of it,
  so a node that starts late learns the others, and a node that died is forgotten
  ``ttl`` seconds after its last word (``live:hello`` asks the others for one at once).

``Peers`` is that knowledge, by node; it announces nothing itself (``LiveDesk`` does, with
the merged view). Time is the monotonic ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Peers", "RemoteAgent", "best_status"]

_RANK = {"offline": 0, "away": 1, "online": 2}


def best_status(statuses: Iterable[str]) -> str:
    """The status an agent shows for several nodes' statuses: online, away, else offline."""
    return max(statuses, key=lambda s: _RANK.get(s, 0), default="offline")


@dataclass(slots=True)
class RemoteAgent:
    """One agent as one other node reports them."""

    connected: bool  # has at least one socket on that node
    status: str
    last_seen: float  # wall-clock seconds
    name: str | None = None


@dataclass(slots=True)
class _RemoteView:
    name: str | None
    typing: bool


class Peers:
    """Agents and viewers of the other nodes, each node's report replacing its last."""

    def __init__(self, *, ttl: float = 35.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._expires: dict[str, float] = {}  # node -> monotonic time its word runs out
        self._agents: dict[tuple[str, str], dict[str, RemoteAgent]] = {}
        # conversation id -> user id -> node -> what that node reports
        self._views: dict[str, dict[str, dict[str, _RemoteView]]] = {}

    # -- reading -------------------------------------------------------------------------------

    def agents(self, tenant_id: str, user_id: str) -> list[RemoteAgent]:
        """What the live nodes report of one agent (empty when none knows them)."""
        return list(self._agents.get((tenant_id, user_id), {}).values())

    def connected_elsewhere(self, tenant_id: str, user_id: str) -> RemoteAgent | None:
        """The best report of a node where the agent has a socket, else None."""
        reports = [r for r in self.agents(tenant_id, user_id) if r.connected]
        if not reports:
            return None
        return max(reports, key=lambda r: _RANK.get(r.status, 0))

    def tenant_agents(self, tenant_id: str) -> dict[str, list[RemoteAgent]]:
        """Every agent of a tenant some other node knows: user id -> its nodes' reports."""
        return {
            user: list(nodes.values())
            for (tenant, user), nodes in self._agents.items()
            if tenant == tenant_id and nodes
        }

    def viewers(self, conversation_id: str) -> dict[str, tuple[str | None, bool]]:
        """Agents viewing a conversation on other nodes: user id -> (name, typing)."""
        out: dict[str, tuple[str | None, bool]] = {}
        for user_id, nodes in self._views.get(conversation_id, {}).items():
            if nodes:
                name = next((v.name for v in nodes.values() if v.name), None)
                out[user_id] = (name, any(v.typing for v in nodes.values()))
        return out

    def nodes(self) -> list[str]:
        """The other nodes heard from within ``ttl``."""
        return list(self._expires)

    # -- what the other nodes say --------------------------------------------------------------

    def heard(self, node: str) -> None:
        """``node`` spoke: its reports stay valid for another ``ttl`` seconds."""
        self._expires[node] = self._clock() + self._ttl

    def agent(self, node: str, data: dict[str, Any]) -> tuple[str, str] | None:
        """Apply one ``live:agent`` report; return the agent's (tenant, user), None if bad."""
        key = _agent_key(data)
        if key is None:
            return None
        self.heard(node)
        self._agents.setdefault(key, {})[node] = RemoteAgent(
            connected=bool(data.get("connected")),
            status=str(data.get("status") or "offline"),
            last_seen=float(data.get("lastSeen") or 0.0),
            name=data.get("name") if isinstance(data.get("name"), str) else None,
        )
        return key

    def view(self, node: str, data: dict[str, Any]) -> str | None:
        """Apply one ``live:view`` report; return its conversation id, None if bad."""
        conversation_id, user_id = data.get("conversationId"), data.get("userId")
        if not isinstance(conversation_id, str) or not isinstance(user_id, str):
            return None
        self.heard(node)
        users = self._views.setdefault(conversation_id, {})
        nodes = users.setdefault(user_id, {})
        if data.get("viewing"):
            name = data.get("name")
            nodes[node] = _RemoteView(
                name if isinstance(name, str) else None, bool(data.get("typing"))
            )
        else:
            nodes.pop(node, None)
            if not nodes:
                del users[user_id]
            if not users:
                del self._views[conversation_id]
        return conversation_id

    def snapshot(self, node: str, data: dict[str, Any]) -> None:
        """Replace everything known of ``node`` with its ``live:snapshot``."""
        self.forget(node)
        self.heard(node)
        for item in data.get("agents") or ():
            if isinstance(item, dict):
                self.agent(node, item)
        for item in data.get("views") or ():
            if isinstance(item, dict):
                self.view(node, {**item, "viewing": True})

    def forget(self, node: str) -> tuple[set[tuple[str, str]], set[str]]:
        """Drop every report of ``node``; return the agents and conversations it touched."""
        self._expires.pop(node, None)
        agents: set[tuple[str, str]] = set()
        for key, nodes in list(self._agents.items()):
            if nodes.pop(node, None) is not None:
                agents.add(key)
            if not nodes:
                del self._agents[key]
        conversations: set[str] = set()
        for conversation_id, users in list(self._views.items()):
            for user_id, nodes in list(users.items()):
                if nodes.pop(node, None) is not None:
                    conversations.add(conversation_id)
                if not nodes:
                    del users[user_id]
            if not users:
                del self._views[conversation_id]
        return agents, conversations

    def expire(self) -> tuple[list[str], set[tuple[str, str]], set[str]]:
        """Forget the nodes silent for ``ttl``; return them, their agents and conversations."""
        now = self._clock()
        gone = [node for node, until in self._expires.items() if until <= now]
        agents: set[tuple[str, str]] = set()
        conversations: set[str] = set()
        for node in gone:
            a, c = self.forget(node)
            agents |= a
            conversations |= c
        return gone, agents, conversations


def _agent_key(data: dict[str, Any]) -> tuple[str, str] | None:
    tenant_id, user_id = data.get("tenantId"), data.get("userId")
    if isinstance(tenant_id, str) and isinstance(user_id, str):
        return tenant_id, user_id
    return None
