"""Server-side Engine.IO v4 session: transport state, heartbeat and upgrade of one client.

Theory of operation
-------------------
Rule 1: every Engine.IO session state transition lives in this module. The listener feeds it
what it reads (packets, with the time they arrived) and the passing of time (``tick``); the
session answers with events and with the bytes to write. Nothing here does I/O or reads a
clock: ``now`` is always an argument.

A session is in exactly one state::

    POLLING --attach_probe()--> PROBING --"2probe"--> UPGRADING --"5"--> WEBSOCKET
       ^                           |                      |
       +------probe_failed()-------+----------------------+

    WEBSOCKET  (a session opened on a websocket starts here)

    any --CLOSE packet, close(), ping timeout--> CLOSED

* Heartbeat. The server pings: ``ping_interval`` after the OPEN packet (and after each
  PONG) ``tick(now)`` asks for a PING; the client has ``ping_timeout`` from then to answer
  (counted from when the ping was due), after which ``tick`` closes the session. Each session has its own schedule: ``deadline`` says when the
  next ``tick`` has work to do, so a host runs one timer for all sessions, ordered by it.
* Long-polling. While the session is not on a websocket, what the server sends is queued
  here (``enqueue``) and a GET takes it: ``start_poll`` parks one poll (a second one at the
  same time is a protocol error and closes the session), ``poll_ready`` says when the parked
  poll can be answered, ``finish_poll`` returns its body, encoded by the codec.
* Upgrade. A websocket opened with the sid of a polling session is a probe. It sends
  ``2probe`` (we answer ``3probe``; from then on a poll is answered at once with a NOOP so
  the client can pause polling), then ``5``: the session lives on the websocket from now on,
  and what was queued for polling goes out on it first, in order. A probe that fails (closed,
  timed out) returns the session to POLLING.
* Closing. A close the client asked for (CLOSE packet) ends the session without a word; any
  other close tells a polling client with a CLOSE packet in its next poll. A poll racing the
  client's own CLOSE packet (its GET reached us after the POST that closed it) is owed a NOOP
  once, which ``start_poll`` grants on a closed session.

Packets are kept in the form a websocket frame carries them (``encode_ws``): text packets as
``str``, binary messages as ``bytes``. The broadcast path builds those once for every
recipient, so only a poll's answer pays for the long-polling encoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from ._engineio import (
    NOOP,
    PING_WS,
    PONG_PROBE,
    EioPacket,
    EioPacketType,
    decode_ws,
    encode_payload,
)
from ._errors import ProtocolError

__all__ = [
    "ClientPing",
    "EioSession",
    "EioState",
    "MessageReceived",
    "PollRefused",
    "SessionClosed",
    "Tick",
]

Payload = str | bytes

CLIENT_CLOSE: Final = "client close"
PING_TIMEOUT: Final = "ping timeout"
TRANSPORT_ERROR: Final = "transport error"


class EioState(Enum):
    """Where an Engine.IO session is in its life (see the module's diagram)."""

    POLLING = "polling"
    PROBING = "probing"
    UPGRADING = "upgrading"
    WEBSOCKET = "websocket"
    CLOSED = "closed"


class PollRefused(Enum):
    """Why ``EioSession.start_poll`` refused a GET."""

    CLOSED = "closed"  # the session is over: the sid is unknown from now on
    NOT_POLLING = "not polling"  # the session lives on a websocket
    DUPLICATE = "duplicate"  # a poll was already parked: the session was closed for it


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """The client sent a MESSAGE: ``data`` is text, or bytes for a binary message."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class ClientPing:
    """An Engine.IO v3-style client ping; write ``reply`` (its PONG) back."""

    reply: str


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session just closed, for ``reason``."""

    reason: str


EioEvent = MessageReceived | ClientPing | SessionClosed


@dataclass(frozen=True, slots=True)
class Tick:
    """What ``EioSession.tick`` asks of the host: write ``send`` (if set); ``timed_out``."""

    send: str | None
    timed_out: bool


_IDLE: Final = Tick(None, False)
_PING: Final = Tick(PING_WS, False)
_TIMED_OUT: Final = Tick(None, True)
_NOOP_BODY: Final = NOOP
_CLOSE_PACKET: Final = "1"


class EioSession:
    """Engine.IO v4 state of one client, server side."""

    __slots__ = (
        "sid",
        "state",
        "close_reason",
        "queue",
        "queued_bytes",
        "polling",
        "_interval",
        "_timeout",
        "_next_ping",
        "_pong_deadline",
        "_owes_noop",
    )

    def __init__(
        self,
        sid: str,
        now: float,
        *,
        ping_interval: float,
        ping_timeout: float,
        websocket: bool = False,
    ) -> None:
        """Open a session at ``now`` on long-polling, or on a websocket if ``websocket``."""
        self.sid = sid
        self.state = EioState.WEBSOCKET if websocket else EioState.POLLING
        self.close_reason = ""
        self.queue: list[Payload] = []  # packets waiting for a poll, in websocket form
        self.queued_bytes = 0
        self.polling = False  # a GET is parked
        self._interval = ping_interval
        self._timeout = ping_timeout
        self._next_ping = now + ping_interval
        self._pong_deadline = math.inf  # inf: no ping outstanding
        self._owes_noop = False

    def __repr__(self) -> str:
        return f"<EioSession {self.sid} {self.state.value}>"

    @property
    def closed(self) -> bool:
        """Whether the session is over."""
        return self.state is EioState.CLOSED

    @property
    def on_websocket(self) -> bool:
        """Whether packets go out on the websocket (and are never queued here)."""
        return self.state is EioState.WEBSOCKET

    # -- heartbeat ---------------------------------------------------------------------------

    @property
    def deadline(self) -> float:
        """The time at which ``tick`` has something to do (``inf`` once closed)."""
        if self.state is EioState.CLOSED:
            return math.inf
        return min(self._pong_deadline, self._next_ping)

    def tick(self, now: float) -> Tick:
        """Advance the heartbeat to ``now``.

        Returns:
            ``Tick(send="2")`` when a PING is due (write it; the pong clock starts now),
            ``Tick(timed_out=True)`` when the client missed its PONG (the session is closed,
            reason ``"ping timeout"``), else a Tick asking for nothing.

        Raises:
            Nothing.
        """
        if self.state is EioState.CLOSED:
            return _IDLE
        if self._pong_deadline != math.inf:
            if now >= self._pong_deadline:
                self._close(PING_TIMEOUT)
                return _TIMED_OUT
            return _IDLE
        if now >= self._next_ping:
            # The pong clock starts when the ping was due, so a host's timer running a little
            # late does not give the client extra time (a request past open + interval +
            # timeout finds the session over); a timer very late still leaves the client
            # half of pingTimeout to answer.
            due = self._next_ping
            self._pong_deadline = max(due + self._timeout, now + self._timeout / 2)
            self._next_ping = math.inf
            return _PING
        return _IDLE

    # -- packets from the client -------------------------------------------------------------

    def receive(self, packet: EioPacket, now: float) -> EioEvent | None:
        """Apply one packet the client sent on the session's transport at ``now``.

        Returns:
            ``MessageReceived`` for a MESSAGE, ``ClientPing`` for a PING, ``SessionClosed``
            for a CLOSE (the session is then over), None for PONG and NOOP.

        Raises:
            ProtocolError: the session is closed, or the packet is one a client never sends
                on its transport (OPEN, UPGRADE). The session should then be closed.
        """
        kind = packet.type
        if kind is EioPacketType.MESSAGE:
            if self.state is EioState.CLOSED:
                raise ProtocolError("packet for a closed session")
            return MessageReceived(packet.data)
        if self.state is EioState.CLOSED:
            raise ProtocolError("packet for a closed session")
        if kind is EioPacketType.PONG:
            if self._pong_deadline != math.inf:
                self._pong_deadline = math.inf
                self._next_ping = now + self._interval
            return None
        if kind is EioPacketType.PING:
            # Engine.IO v3 clients ping; answering is harmless and keeps them alive.
            data = packet.data if isinstance(packet.data, str) else ""
            return ClientPing("3" + data)
        if kind is EioPacketType.CLOSE:
            self._owes_noop = self.state is not EioState.WEBSOCKET and not self.polling
            self._close(CLIENT_CLOSE)
            return SessionClosed(CLIENT_CLOSE)
        if kind is EioPacketType.NOOP:
            return None
        raise ProtocolError(f"unexpected Engine.IO packet from client: {kind.name}")

    # -- upgrade -----------------------------------------------------------------------------

    def attach_probe(self) -> bool:
        """A websocket arrived with this session's sid; return whether it may probe.

        Only a polling session with no probe of its own may upgrade; otherwise the host
        turns the websocket away (and the session goes on as it was).
        """
        if self.state is not EioState.POLLING:
            return False
        self.state = EioState.PROBING
        return True

    def receive_probe(self, packet: EioPacket) -> str | list[Payload]:
        """Apply one packet from the probe websocket.

        Returns:
            For ``2probe``: the ``3probe`` text to write on the probe (a parked poll is
            then ready, with a NOOP). For ``5``: the packets queued for polling, to write on
            the websocket before anything else (the session is on the websocket now; a
            parked poll is ready, with a NOOP).

        Raises:
            ProtocolError: any other packet, or one out of order.
        """
        kind = packet.type
        if self.state is EioState.PROBING and kind is EioPacketType.PING:
            if packet.data == "probe":
                self.state = EioState.UPGRADING
                return PONG_PROBE
        elif self.state is EioState.UPGRADING and kind is EioPacketType.UPGRADE:
            self.state = EioState.WEBSOCKET
            flushed = [item for item in self.queue if item != NOOP]
            self.queue = []
            self.queued_bytes = 0
            return flushed
        raise ProtocolError(f"unexpected packet during upgrade: {kind.name} in {self.state.value}")

    def probe_failed(self) -> None:
        """The probe websocket went away before ``5``: go on polling."""
        if self.state in (EioState.PROBING, EioState.UPGRADING):
            self.state = EioState.POLLING

    # -- long-polling ------------------------------------------------------------------------

    def enqueue(self, items: Sequence[Payload], limit: float = math.inf) -> bool:
        """Queue packets (websocket form) for the next poll.

        Returns:
            False if the session is closed, or if the queue now holds more than ``limit``
            bytes (the client stopped polling: the host closes it as a slow consumer).

        Raises:
            Nothing.
        """
        if self.state is EioState.CLOSED:
            return False
        self.queue.extend(items)
        self.queued_bytes += sum(map(len, items))
        return self.queued_bytes <= limit

    def expire(self, now: float) -> bool:
        """Close the session if the client's PONG is overdue at ``now``; return whether it is.

        A request that arrives past the deadline finds the session closed whatever a host's
        timer has done so far, so the answer never depends on how late that timer runs.
        """
        if self.state is not EioState.CLOSED and now >= self._pong_deadline:
            self._close(PING_TIMEOUT)
        return self.state is EioState.CLOSED

    @property
    def owes_noop(self) -> bool:
        """Whether a poll racing the client's own CLOSE is still to be answered with a NOOP."""
        return self._owes_noop

    def start_poll(self, now: float) -> PollRefused | None:
        """A GET arrived at ``now``: park it, or say why not.

        A poll past the client's ping deadline finds the session timed out (``CLOSED``, see
        ``expire``). A second poll while one is parked closes
        the session (``DUPLICATE``, reason ``"transport error"``).

        Returns:
            None when the poll is parked (answer it once ``poll_ready``), else the reason.

        Raises:
            Nothing.
        """
        self.expire(now)
        if self.state is EioState.CLOSED:
            if self._owes_noop and not self.polling:
                self._owes_noop = False
                self.polling = True
                return None
            return PollRefused.CLOSED
        if self.state is EioState.WEBSOCKET:
            return PollRefused.NOT_POLLING
        if self.polling:
            self._close(TRANSPORT_ERROR)
            return PollRefused.DUPLICATE
        self.polling = True
        return None

    def poll_ready(self) -> bool:
        """Whether the parked poll can be answered now."""
        return bool(self.queue) or self.state in (
            EioState.CLOSED,
            EioState.UPGRADING,
            EioState.WEBSOCKET,
        )

    def finish_poll(self) -> str:
        """Answer the parked poll: return its long-polling body and empty the queue.

        An empty answer is a NOOP (an upgrade in progress, or the client's own close); a
        session closed by the server adds a CLOSE packet after what was queued.

        Raises:
            ProtocolError: a queued text packet contains the payload separator (a bug in
                what was queued: the codec would otherwise split it in two).
        """
        items, self.queue = self.queue, []
        self.queued_bytes = 0
        self.polling = False
        if self.state is EioState.CLOSED:
            self._owes_noop = False
            if self.close_reason != CLIENT_CLOSE:
                items.append(_CLOSE_PACKET)
        if not items:
            return _NOOP_BODY
        first = items[0]
        if len(items) == 1 and isinstance(first, str) and "\x1e" not in first:
            return first  # one text packet is its own payload: no need to split and rejoin
        return encode_payload([decode_ws(item) for item in items])

    def abandon_poll(self) -> None:
        """The parked poll went away unanswered (its connection closed): forget it."""
        self.polling = False

    # -- closing -----------------------------------------------------------------------------

    def close(self, reason: str) -> bool:
        """Close the session from the server side; return False if it was already closed."""
        if self.state is EioState.CLOSED:
            return False
        self._close(reason)
        return True

    def _close(self, reason: str) -> None:
        self.state = EioState.CLOSED
        self.close_reason = reason
