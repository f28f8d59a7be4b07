"""What the API is handed: the services it serves from, as a contract it owns.

The API never imports the composition root. ``zapline.runtime.Runtime`` satisfies
``ApiServices`` structurally and is stored on the Quart app by ``create_app``; handlers reach
it with ``runtime_of(current_app)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from quart import Quart

if TYPE_CHECKING:
    from api.metrics import Metrics
    from desk import Desk, Emitter
    from desk.audit import AuditLog
    from desk.live import LiveDesk
    from desk.media_cache import MediaCache
    from desk.ratelimit import RateLimiter
    from engine.jobs import PriorityJobQueue
    from storage import Conversation, Storage


class ApiSettings(Protocol):
    """The settings the API reads."""

    @property
    def jwt_secret(self) -> str:
        """HS256 secret of the agents' tokens."""
        ...

    @property
    def webhook_max_bytes(self) -> int:
        """Largest webhook body accepted."""
        ...

    @property
    def metrics_token(self) -> str | None:
        """Bearer token /metrics requires, if any."""
        ...

    @property
    def agent_sees(self) -> str:
        """``assigned_and_unassigned`` or ``all``: which conversations an agent sees."""
        ...

    def socket_url(self) -> str:
        """The Socket.IO URL browsers are told."""
        ...


class ApiServices(Protocol):
    """Everything a request handler may use."""

    @property
    def settings(self) -> ApiSettings:
        """The process settings."""
        ...

    @property
    def storage(self) -> Storage:
        """The one storage of the process."""
        ...

    @property
    def desk(self) -> Desk:
        """The WhatsApp desk: intake, replies, conversation changes."""
        ...

    @property
    def live(self) -> LiveDesk:
        """Presence, typing and viewers of this node."""
        ...

    @property
    def limits(self) -> RateLimiter:
        """The rate limits of client events and of the REST API."""
        ...

    @property
    def media(self) -> MediaCache:
        """Downloaded media (bounded cache) and uploads waiting for their send."""
        ...

    @property
    def audit(self) -> AuditLog:
        """The audit log: ``record(tenant_id, user_id, action, target, details)``."""
        ...

    @property
    def emitter(self) -> Emitter:
        """Where events go (every node's sockets)."""
        ...

    @property
    def engine(self) -> Any:
        """The Socket.IO engine, read for its statistics only."""
        ...

    @property
    def queue(self) -> PriorityJobQueue:
        """The job queue, read for its statistics only."""
        ...

    @property
    def draining(self) -> bool:
        """True once shutdown started: intake refuses new work."""
        ...

    @property
    def metrics(self) -> Metrics:
        """The process's Prometheus metrics."""
        ...

    def evict(self, conversation: Conversation) -> None:
        """After an assignment: sockets that may no longer see it leave its room."""
        ...

    async def readiness(self) -> dict[str, bool]:
        """The readiness checks, each True when healthy."""
        ...


def runtime_of(app: Quart) -> ApiServices:
    """Return the services the app was created with."""
    return app.extensions["zapline"]  # type: ignore[no-any-return]
