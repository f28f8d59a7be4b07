"""Media on disk: a bounded cache of downloaded WhatsApp media, and uploads waiting to be sent.

Theory of operation
-------------------
``root/cache`` holds one ``<name>.bin`` (the bytes) and ``<name>.json`` (type, file name,
size) per media object, ``<name>`` being a hash of the caller's key. The cache keeps at most
``max_bytes`` of ``.bin`` files: after each addition the least recently used entries (by last
use, which is the file's mtime, so the order survives a restart) are deleted. A file is
always written under ``root/tmp`` first, fsynced, and renamed into place, so a crash never
leaves half a file under a real name. A caller gets an open handle: POSIX keeps the bytes
readable after an eviction unlinks them, so a response already streaming is never cut.

Concurrent requests for the same key share one download: the first runs ``fetch``, the others
wait for it and then read what it stored (if it failed, the next waiter tries itself).

``root/uploads/<tenant hash>`` holds files agents uploaded until their send went out (one
folder per tenant: an upload id never names another tenant's file); they are not counted
against the bound and are never evicted (a restart mid-send still finds them). Once sent, an
upload moves into the cache under its media id. One process owns a directory: nodes sharing
a database each keep their own cache (a second node's uploads are sent by the node that took
them).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import orjson

__all__ = ["CachedMedia", "MediaCache", "MediaMeta", "StoredUpload", "UploadTooLarge"]

log = logging.getLogger("zapline.desk")

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class MediaMeta:
    """What is known of a stored file: its type, original file name (if any), size."""

    mime_type: str
    size: int
    filename: str | None = None


@dataclass(slots=True)
class CachedMedia:
    """An open stored file and its description; ``close()`` it when done (or use ``chunks``)."""

    meta: MediaMeta
    handle: BinaryIO

    async def chunks(self, size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """Yield the file's bytes, then close it (also when the consumer stops early)."""
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(self.handle.read, size)
                if not chunk:
                    return
                yield chunk
        finally:
            self.handle.close()

    def close(self) -> None:
        """Close the handle. Never raises."""
        self.handle.close()


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload kept until it is sent: its id (a file name), size and SHA-256."""

    id: str
    size: int
    sha256: str


class UploadTooLarge(Exception):
    """An upload went past the limit it was given; nothing was kept."""


def _fsync_replace(tmp: Path, final: Path) -> None:
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)


def _write_json(tmp: Path, final: Path, data: dict[str, Any]) -> None:
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(data))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)


class MediaCache:
    """The media directory of one process (see the module docstring)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max(0, max_bytes)
        self._cache = root / "cache"
        self._uploads = root / "uploads"
        self._tmp = root / "tmp"
        self._index: OrderedDict[str, int] | None = None  # name -> size, least recent first
        self._total = 0
        self._inflight: dict[str, anyio.Event] = {}
        self._loading = anyio.Lock()

    # -- the cache ---------------------------------------------------------------------------

    @staticmethod
    def name_of(key: str) -> str:
        """The file name (without suffix) a key is stored under."""
        return hashlib.sha256(key.encode()).hexdigest()

    def statistics(self) -> dict[str, int]:
        """``{"entries", "bytes", "max_bytes"}`` of the cache (after its first use)."""
        entries = 0 if self._index is None else len(self._index)
        return {"entries": entries, "bytes": self._total, "max_bytes": self.max_bytes}

    async def open(
        self, key: str, fetch: Callable[[Callable[[bytes], Awaitable[Any]]], Awaitable[MediaMeta]]
    ) -> CachedMedia:
        """Return the media stored under ``key``, fetching it first when absent.

        ``fetch(write)`` must write the bytes through ``write`` and return their description;
        what it raises is raised here (and nothing is stored). Concurrent calls for one key
        run ``fetch`` once. Raises OSError when the disk fails.
        """
        await self._load()
        name = self.name_of(key)
        while True:
            hit = await self._open_entry(name)
            if hit is not None:
                return hit
            running = self._inflight.get(name)
            if running is None:
                break
            await running.wait()
        done = anyio.Event()
        self._inflight[name] = done
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            async with await anyio.open_file(tmp, "wb") as out:
                meta = await fetch(out.write)
            return await self._commit(name, tmp, meta)
        finally:
            del self._inflight[name]
            done.set()
            tmp.unlink(missing_ok=True)

    async def _load(self) -> None:
        if self._index is not None:
            return
        # One scan: a second one would take the first caller's file in tmp/ for a leftover.
        async with self._loading:
            if self._index is None:
                await self._scan()

    async def _scan(self) -> None:

        def scan() -> list[tuple[float, str, int]]:
            for folder in (self._cache, self._uploads, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
            for stale in self._tmp.iterdir():  # a crash's leftovers
                stale.unlink(missing_ok=True)
            found = []
            for path in self._cache.glob("*.bin"):
                if path.with_suffix(".json").exists():
                    stat = path.stat()
                    found.append((stat.st_mtime, path.stem, stat.st_size))
                else:
                    path.unlink(missing_ok=True)
            return sorted(found)

        entries = await anyio.to_thread.run_sync(scan)
        self._index = OrderedDict((name, size) for _, name, size in entries)
        self._total = sum(self._index.values())

    async def _open_entry(self, name: str) -> CachedMedia | None:
        assert self._index is not None
        if name not in self._index:
            return None
        path = self._cache / f"{name}.bin"

        def read() -> tuple[dict[str, Any], BinaryIO]:
            meta = orjson.loads(path.with_suffix(".json").read_bytes())
            handle = path.open("rb")
            os.utime(path)  # the last use: the LRU order after a restart
            return meta, handle

        try:
            raw, handle = await anyio.to_thread.run_sync(read)
        except (OSError, orjson.JSONDecodeError):
            self._forget(name)
            return None
        self._index.move_to_end(name)
        return CachedMedia(MediaMeta(**raw), handle)

    async def _commit(self, name: str, tmp: Path, meta: MediaMeta) -> CachedMedia:
        assert self._index is not None
        final = self._cache / f"{name}.bin"
        info = self._tmp / f"{uuid.uuid4().hex}.json"

        def place() -> BinaryIO:
            _write_json(info, final.with_suffix(".json"), asdict(meta))
            _fsync_replace(tmp, final)
            return final.open("rb")

        handle = await anyio.to_thread.run_sync(place)
        self._forget(name, unlink=False)
        self._index[name] = meta.size
        self._total += meta.size
        await self._evict()
        return CachedMedia(meta, handle)

    def _forget(self, name: str, *, unlink: bool = True) -> None:
        assert self._index is not None
        size = self._index.pop(name, None)
        if size is not None:
            self._total -= size
        if unlink:
            for suffix in (".bin", ".json"):
                (self._cache / f"{name}{suffix}").unlink(missing_ok=True)

    async def _evict(self) -> None:
        assert self._index is not None
        doomed = []
        while self._total > self.max_bytes and self._index:
            oldest = next(iter(self._index))
            self._forget(oldest, unlink=False)
            doomed.append(oldest)
        if doomed:
            # The index is only touched on the event loop; the files go in a worker thread.
            await anyio.to_thread.run_sync(self._unlink, doomed)

    def _unlink(self, names: list[str]) -> None:
        for name in names:
            if name in (self._index or {}):
                continue  # stored again meanwhile
            for suffix in (".bin", ".json"):
                (self._cache / f"{name}{suffix}").unlink(missing_ok=True)

    # -- uploads -----------------------------------------------------------------------------

    def _owner_dir(self, owner: str) -> Path:
        # Each tenant's uploads in a folder of its own: an id never names another's file.
        return self._uploads / hashlib.sha256(owner.encode()).hexdigest()[:32]

    def upload_path(self, upload_id: str, owner: str) -> Path | None:
        """The file of ``owner``'s upload, or None when ``upload_id`` is not one of ours (a
        name we could have made: 32 hex digits) or the file is gone."""
        if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
            return None
        path = self._owner_dir(owner) / upload_id
        return path if path.is_file() else None

    async def save_upload(
        self, chunks: AsyncIterator[bytes], limit: int, owner: str
    ) -> StoredUpload:
        """Write ``chunks`` durably as a new upload of ``owner`` (a tenant); return it.

        Raises UploadTooLarge past ``limit`` bytes (nothing kept), OSError when the disk fails.
        """
        await self._load()
        upload_id = uuid.uuid4().hex
        tmp = self._tmp / f"{upload_id}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            async with await anyio.open_file(tmp, "wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise UploadTooLarge(f"larger than {limit} bytes")
                    digest.update(chunk)
                    await out.write(chunk)
            folder = self._owner_dir(owner)
            await anyio.to_thread.run_sync(lambda: folder.mkdir(exist_ok=True))
            await anyio.to_thread.run_sync(_fsync_replace, tmp, folder / upload_id)
        finally:
            tmp.unlink(missing_ok=True)
        return StoredUpload(upload_id, size, digest.hexdigest())

    async def discard_upload(self, upload_id: str, owner: str) -> None:
        """Delete an upload (sent elsewhere, or failed for good). Never raises."""
        path = self.upload_path(upload_id, owner)
        if path is not None:
            path.unlink(missing_ok=True)

    async def adopt_upload(self, upload_id: str, owner: str, key: str, meta: MediaMeta) -> None:
        """Move a sent upload into the cache under ``key`` (its media id), within the bound.

        Never raises: the upload is then only deleted (the cache would fetch it again).
        """
        path = self.upload_path(upload_id, owner)
        if path is None:
            return
        try:
            await self._load()
            name = self.name_of(key)
            (await self._commit(name, path, meta)).close()
        except OSError as exc:
            log.warning("could not keep sent upload %s in the media cache: %s", upload_id, exc)
            path.unlink(missing_ok=True)
