"""Liveness, readiness, and where browsers find the socket listener.

Readiness includes writability: a database that answers reads but cannot commit (a full
disk, a read-only file system, a lock held elsewhere) is not ready, so ``/readyz`` commits a
small real write (``Storage.check_writable``) at most once per ``WRITE_CHECK_TTL`` seconds
and answers every probe in between from that result.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
from quart import Blueprint, current_app, jsonify

from api.context import runtime_of
from storage import Storage, StorageError

blueprint = Blueprint("health", __name__)
log = logging.getLogger("zapline.api")

WRITE_CHECK_TTL: Final = 1.0
WRITE_CHECK_TIMEOUT: Final = 2.0


@dataclass
class WriteCheck:
    """The latest ``check_writable`` outcome, refreshed at most once per ``ttl`` seconds."""

    ttl: float = WRITE_CHECK_TTL
    checked_at: float = -math.inf
    failure: str | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)

    async def failure_of(self, storage: Storage) -> str | None:
        """Return why storage cannot commit a write now, or None when it can.

        Concurrent callers share one check; a result younger than ``ttl`` is reused.
        """
        async with self.lock:
            if time.monotonic() - self.checked_at >= self.ttl:
                failure = await _check(storage)
                if failure != self.failure:
                    if failure is None:
                        log.info("storage is writable again")
                    else:
                        log.warning("storage is not writable: %s", failure)
                self.failure, self.checked_at = failure, time.monotonic()
            return self.failure


async def _check(storage: Storage) -> str | None:
    try:
        with anyio.fail_after(WRITE_CHECK_TIMEOUT):
            await storage.check_writable()
    except TimeoutError:
        return f"a write did not commit within {WRITE_CHECK_TIMEOUT:g} s"
    except StorageError as exc:
        # The driver's own words ("database or disk is full"), without the database's
        # location: this endpoint answers anyone who can reach it.
        return f"cannot commit a write: {exc.__cause__ or exc}"
    return None


@blueprint.get("/healthz")
async def healthz() -> Any:
    """200 while the process is alive."""
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
async def readyz() -> Any:
    """200 when storage commits writes, queues are below their high-water mark and we are not
    draining; otherwise 503, with ``reasons`` naming why storage failed when it did."""
    runtime = runtime_of(current_app)
    checks = await runtime.readiness()
    write_check = current_app.extensions.setdefault("zapline.write_check", WriteCheck())
    failure = await write_check.failure_of(runtime.storage)
    body: dict[str, Any] = {}
    if failure is not None:
        checks["storage"] = False
        body["reasons"] = {"storage": failure}
    ready = all(checks.values())
    response = jsonify({"ready": ready, "checks": checks, **body})
    response.status_code = 200 if ready else 503
    return response


@blueprint.get("/api/config")
async def config() -> Any:
    """Tell a browser where the Socket.IO listener is (``ZAPLINE_PUBLIC_SOCKET_URL`` overrides)."""
    runtime = runtime_of(current_app)
    return jsonify({"socketUrl": runtime.settings.socket_url(), "socketPath": "/socket.io/"})
