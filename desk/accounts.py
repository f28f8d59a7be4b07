"""A small read-through cache of WhatsApp accounts (phone_number_id -> tenant, secrets).

Every webhook needs its account; accounts change rarely (the admin CLI adds them while the
server runs), so hits are served from memory for ``ttl`` seconds and misses are re-asked after
``negative_ttl`` seconds, which bounds how long a newly added number stays unknown.
"""

from __future__ import annotations

import time

from storage import Account, Storage


class AccountCache:
    """``get(phone_number_id)`` with a time-bounded memory."""

    def __init__(self, storage: Storage, *, ttl: float = 30.0, negative_ttl: float = 2.0) -> None:
        self._storage = storage
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._entries: dict[str, tuple[float, Account | None]] = {}

    async def get(self, phone_number_id: str) -> Account | None:
        """Return the account of ``phone_number_id``, or None if there is none."""
        now = time.monotonic()
        entry = self._entries.get(phone_number_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        account = await self._storage.get_account(phone_number_id)
        ttl = self._ttl if account is not None else self._negative_ttl
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[phone_number_id] = (now + ttl, account)
        return account
