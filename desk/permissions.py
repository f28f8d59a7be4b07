"""Who may see which conversation, and the rooms that carry each event only to them.

Roles: ``admin`` (and ``ops``) see every conversation of their tenant. An ``agent`` sees the
conversations assigned to them and the unassigned ones, or every one when the deployment says
``ZAPLINE_AGENT_SEES=all``. The rule is applied by the server, never in the browser: events
go to rooms chosen here, joins and REST calls are checked here.

Rooms: every socket of a tenant is in ``tenant:{id}``; sockets that see everything are also
in ``tenant:{id}:all``; each user's sockets are in ``user:{id}``. An event about a conversation
goes to ``tenant:{id}`` while it is unassigned (every agent may see it), and to
``tenant:{id}:all`` plus its assignee's ``user:{id}`` once assigned; always also to
``conversation:{id}``, whose members were checked when they joined (and are removed when an
assignment takes their right away).
"""

from __future__ import annotations

from collections.abc import Iterable

from desk.contract import conversation_room, tenant_room, user_room
from storage import Conversation

__all__ = [
    "AGENT_SEES",
    "audience",
    "may_see",
    "sees_everything",
    "supervisors_room",
]

AGENT_SEES = ("assigned_and_unassigned", "all")


def supervisors_room(tenant_id: str) -> str:
    """Room of the sockets of a tenant that see every conversation."""
    return f"tenant:{tenant_id}:all"


def sees_everything(role: str, agent_sees: str) -> bool:
    """True for a role that sees every conversation of its tenant."""
    return role in ("admin", "ops") or agent_sees == "all"


def may_see(role: str, user_id: str, assignee_id: str | None, agent_sees: str) -> bool:
    """True when ``user_id`` with ``role`` may see a conversation assigned to ``assignee_id``."""
    return sees_everything(role, agent_sees) or assignee_id is None or assignee_id == user_id


def audience(conversation: Conversation) -> list[str]:
    """The rooms an event about ``conversation`` goes to (see the module docstring)."""
    tenant = conversation.tenant_id
    if conversation.assignee_id is None:
        return [tenant_room(tenant), conversation_room(conversation.id)]
    return [
        supervisors_room(tenant),
        user_room(conversation.assignee_id),
        conversation_room(conversation.id),
    ]


def union(*groups: Iterable[str]) -> list[str]:
    """The rooms of several audiences, each once, in order."""
    seen: dict[str, None] = {}
    for group in groups:
        for room in group:
            seen.setdefault(room, None)
    return list(seen)
