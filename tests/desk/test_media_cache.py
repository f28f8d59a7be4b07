"""The media cache on a real directory: its bound, its LRU order across a restart, atomic
writes, one fetch per key under concurrency, and uploads kept apart until sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from desk.media_cache import MediaCache, MediaMeta, UploadTooLarge

pytestmark = pytest.mark.anyio

Write = Callable[[bytes], Awaitable[Any]]


def fetcher(data: bytes, calls: list[str], key: str, delay: float = 0.0) -> Any:
    async def fetch(write: Write) -> MediaMeta:
        calls.append(key)
        await anyio.sleep(delay)
        await write(data[: len(data) // 2])
        await write(data[len(data) // 2 :])
        return MediaMeta("image/jpeg", len(data), None)

    return fetch


async def read(cache: MediaCache, key: str, data: bytes, calls: list[str]) -> bytes:
    media = await cache.open(key, fetcher(data, calls, key))
    return b"".join([chunk async for chunk in media.chunks()])


async def test_a_hit_does_not_fetch_and_the_bound_evicts_the_least_recently_used(
    tmp_path: Path,
) -> None:
    cache = MediaCache(tmp_path, max_bytes=250)
    calls: list[str] = []
    blobs = {k: bytes([i]) * 100 for i, k in enumerate("abc")}
    assert await read(cache, "a", blobs["a"], calls) == blobs["a"]
    assert await read(cache, "b", blobs["b"], calls) == blobs["b"]
    assert await read(cache, "a", blobs["a"], calls) == blobs["a"]  # a is now the newest
    assert await read(cache, "c", blobs["c"], calls) == blobs["c"]  # 300 > 250: b goes
    assert calls == ["a", "b", "c"]
    assert cache.statistics() == {"entries": 2, "bytes": 200, "max_bytes": 250}
    assert await read(cache, "b", blobs["b"], calls) == blobs["b"]
    assert calls == ["a", "b", "c", "b"]
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 2


async def test_the_order_survives_a_restart_and_a_crash_leaves_no_half_file(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    first = MediaCache(tmp_path, max_bytes=1000)
    await read(first, "old", b"o" * 100, calls)
    await anyio.sleep(0.01)  # distinct mtimes
    await read(first, "new", b"n" * 100, calls)
    (tmp_path / "tmp" / "dead.part").write_bytes(b"half")  # a crash mid-write

    again = MediaCache(tmp_path, max_bytes=150)
    assert await read(again, "new", b"n" * 100, calls) == b"n" * 100
    assert calls == ["old", "new"]  # served from disk after the restart
    await read(again, "third", b"t" * 100, calls)  # over 150: "old" was least recently used
    assert await read(again, "old", b"o" * 100, calls) == b"o" * 100
    assert calls[-1] == "old"
    assert not (tmp_path / "tmp" / "dead.part").exists()


async def test_concurrent_requests_share_one_fetch_and_a_failed_one_stores_nothing(
    tmp_path: Path,
) -> None:
    cache = MediaCache(tmp_path, max_bytes=10_000)
    calls: list[str] = []
    got: list[bytes] = []

    async def one() -> None:
        media = await cache.open("k", fetcher(b"x" * 500, calls, "k", delay=0.05))
        got.append(b"".join([chunk async for chunk in media.chunks()]))

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert calls == ["k"] and got == [b"x" * 500] * 5

    async def broken(write: Write) -> MediaMeta:
        await write(b"partial")
        raise RuntimeError("the Cloud API went away")

    with pytest.raises(RuntimeError):
        await cache.open("bad", broken)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert cache.statistics()["entries"] == 1


async def test_uploads_are_kept_apart_until_adopted_and_refused_past_their_limit(
    tmp_path: Path,
) -> None:
    cache = MediaCache(tmp_path, max_bytes=10)

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    upload = await cache.save_upload(chunks(b"u" * 50), limit=100, owner="t1")
    path = cache.upload_path(upload.id, "t1")
    assert path is not None and path.read_bytes() == b"u" * 50
    assert cache.statistics()["bytes"] == 0  # not counted against the bound
    assert cache.upload_path("../cache", "t1") is None
    assert cache.upload_path(upload.id, "t2") is None  # another tenant's id names nothing

    await cache.adopt_upload(upload.id, "t1", "pn/123", MediaMeta("image/png", 50, None))
    assert cache.upload_path(upload.id, "t1") is None
    # Larger than the bound: evicted right away, but the upload is gone either way.
    assert cache.statistics()["entries"] == 0

    with pytest.raises(UploadTooLarge):
        await cache.save_upload(chunks(b"v" * 50), limit=20, owner="t1")
    assert [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()] == []
    assert list((tmp_path / "tmp").iterdir()) == []
