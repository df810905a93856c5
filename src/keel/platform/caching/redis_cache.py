"""The distributed cache: entries in Redis, shared by every replica; a failure is a miss.

Round trips: ``get`` is one ``GET``; ``set``, ``delete`` and ``invalidate_tags`` are one
``EVALSHA`` each (the scripts in :mod:`._lua`); ``invalidate_pattern`` and ``clear`` walk
with ``ZSCAN``/``SCAN`` ``COUNT 500``, never ``KEYS``.

Statistics: hits, misses and evictions are this process's (evictions are those its own
writes caused). ``current_size_bytes`` is shared and exact: the sum of the logical sizes
(key + value) of the live entries, kept in Redis beside an index of the entries. It
does not count Redis's own overhead (~60-100 bytes a key) or the tag sets; an entry that
Redis itself evicts under ``maxmemory`` stays counted until its TTL passes. Keel's
Redis should run a ``noeviction`` or ``volatile-*`` policy: the cache holds its own
budget, and the index (no TTL) must not be evicted.

Failure: every Redis error or timeout makes ``get`` a miss and a write a no-op; the
first one logs ``cache.redis.unavailable`` and sets :attr:`degraded`. While degraded
the cache does not touch Redis (no latency added) except for one probe every
``retry_interval`` seconds. Invalidations that could not be applied are remembered
and replayed, in the background, before the cache serves from Redis again (then
``cache.redis.recovered``): otherwise an entry a write made wrong during the outage
would be served once Redis came back. Entries' TTL bounds what is lost if this
process stops before it can replay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from keel.platform.caching import _lua
from keel.platform.caching._hotkeys import HotKeys
from keel.platform.caching.base import CacheStats, ResourceCache

T = TypeVar("T")

# redis-py raises its own hierarchy; sockets raise OSError (ConnectionError and
# TimeoutError are OSError subclasses, asyncio.timeout raises TimeoutError).
_FAILURES = (RedisError, OSError)
_BATCH = 500
# Beyond this many unapplied invalidations, recovery clears the whole cache instead.
_MAX_LOST = 10_000
_RECOVERY_TIMEOUT = 30.0


def _log() -> Any:
    # Looked up at each (rare) use rather than once per module, so a logger cached on
    # first use never outlives the configuration it was made under (capture_logs).
    return structlog.get_logger("keel.cache")


class _Lost:
    """Invalidations that could not reach Redis, to replay when it answers again."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.tags: set[str] = set()
        self.patterns: set[str] = set()
        self.everything = False

    def __bool__(self) -> bool:
        return self.everything or bool(self.keys or self.tags or self.patterns)

    def add(self, bucket: set[str], items: Iterable[str]) -> None:
        if self.everything:
            return
        bucket.update(items)
        if len(self.keys) + len(self.tags) + len(self.patterns) > _MAX_LOST:
            self.lose_everything()

    def lose_everything(self) -> None:
        """Too much (or a clear) was lost: recovery clears the whole cache."""
        self.everything = True
        self.keys.clear()
        self.tags.clear()
        self.patterns.clear()

    def merge(self, other: _Lost) -> None:
        if other.everything:
            self.lose_everything()
        self.add(self.keys, other.keys)
        self.add(self.tags, other.tags)
        self.add(self.patterns, other.patterns)


class RedisCache(ResourceCache):
    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        max_bytes: int,
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        fill_guard: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        hot_keys: int = 10_000,
    ) -> None:
        """``prefix``: the deployment's key prefix (``KEEL_REDIS_KEY_PREFIX``); entries live
        under ``<prefix>cache:``. ``timeout`` bounds every call however the client
        retries (redis-py's default is 10 retries with up to 1 s backoff)."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("the cache stores bytes: its Redis client must not decode responses")
        self.max_bytes = max_bytes
        self.fill_guard = fill_guard
        self._redis = redis
        self._namespace = f"{prefix}cache:"
        self._values = f"{self._namespace}e:"
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._clock = clock
        self._set = redis.register_script(_lua.SET)
        self._delete = redis.register_script(_lua.DELETE)
        self._invalidate = redis.register_script(_lua.INVALIDATE_TAGS)
        self._size = redis.register_script(_lua.SIZE)
        self._hits = 0
        self._misses = 0
        self._evicted = 0
        self._last_size = 0
        self._hot = HotKeys(hot_keys)
        self._degraded = False
        self._down_since = 0.0
        self._retry_at = 0.0
        self._lost = _Lost()
        self._recovery: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        return self._degraded

    # --- ResourceCache -------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        self._hot.record(key)
        # bytes: the client does not decode responses (checked in __init__).
        value = await self._attempt(
            lambda: cast("Awaitable[bytes | None]", self._redis.get(self._values + key))
        )
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    async def set(self, key: str, value: bytes, *, ttl: float, tags: Sequence[str] = ()) -> bool:
        if ttl <= 0:
            return False
        ttl_ms = max(1, round(ttl * 1000))
        args: list[str | bytes | int] = [
            self._namespace,
            key,
            value,
            ttl_ms,
            self.max_bytes,
            *dict.fromkeys(tags),
        ]
        evicted = await self._attempt(lambda: self._set(args=args))
        if evicted is None or evicted < 0:
            return False
        self._evicted += int(evicted)
        return True

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        dropped = await self._attempt(lambda: self._delete(args=[self._namespace, *keys]))
        if dropped is None:
            self._lost.add(self._lost.keys, keys)
            return 0
        return int(dropped)

    async def invalidate_tags(self, *tags: str) -> int:
        if not tags:
            return 0
        dropped = await self._attempt(lambda: self._invalidate_tags(tags))
        if dropped is None:
            self._lost.add(self._lost.tags, tags)
            return 0
        return dropped

    async def invalidate_pattern(self, pattern: str) -> int:
        dropped = await self._attempt(lambda: self._invalidate_pattern(pattern), within=_RECOVERY_TIMEOUT)
        if dropped is None:
            self._lost.add(self._lost.patterns, [pattern])
            return 0
        return dropped

    async def stats(self) -> CacheStats:
        await self._refresh_size()
        return CacheStats.of(
            hits=self._hits,
            misses=self._misses,
            evicted=self._evicted,
            size_bytes=self._last_size,
            max_bytes=self.max_bytes,
        )

    async def count(self) -> int:
        return await self._refresh_size() or 0

    async def hottest(self, n: int) -> list[str]:
        return self._hot.top(n)

    async def clear(self) -> None:
        if await self._attempt(self._clear, within=_RECOVERY_TIMEOUT) is None:
            self._lost.lose_everything()

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)

    # --- Redis steps ----------------------------------------------------------------

    async def _invalidate_tags(self, tags: Sequence[str]) -> int:
        guard_ms = max(0, round(self.fill_guard * 1000))
        dropped = 0
        while True:
            batch, left = await self._invalidate(args=[self._namespace, guard_ms, _BATCH, *tags])
            dropped += int(batch)
            if not left:
                return dropped

    async def _invalidate_pattern(self, pattern: str) -> int:
        dropped = 0
        batch: list[str] = []
        async for member, _score in self._redis.zscan_iter(
            f"{self._namespace}idx", match=pattern, count=_BATCH
        ):
            batch.append(member.decode())
            if len(batch) >= _BATCH:
                dropped += int(await self._delete(args=[self._namespace, *batch]))
                batch.clear()
        if batch:
            dropped += int(await self._delete(args=[self._namespace, *batch]))
        return dropped

    async def _clear(self) -> bool:
        # The index first, in one step, and the scan then deletes only values and tag
        # sets: an entry stored while the scan runs keeps its index record, so it is
        # found by later invalidations (at worst its value is deleted and its size
        # counted until it expires). The fill guards stay: they only ever refuse fills,
        # and dropping them early could let a stale read back in.
        await self._redis.delete(*(f"{self._namespace}{name}" for name in ("idx", "sz", "bytes")))
        doomed = (self._values.encode(), f"{self._namespace}t:".encode())
        batch: list[bytes] = []
        async for name in self._redis.scan_iter(match=f"{_escape_glob(self._namespace)}*", count=_BATCH):
            if name.startswith(doomed):
                batch.append(name)
            if len(batch) >= _BATCH:
                await self._redis.delete(*batch)
                batch.clear()
        if batch:
            await self._redis.delete(*batch)
        self._last_size = 0
        return True

    async def _refresh_size(self) -> int | None:
        """Entries now; ``_last_size`` updated (kept as it was when Redis is down)."""
        result = await self._attempt(lambda: self._size(args=[self._namespace]))
        if result is None:
            return None
        size, entries = result
        self._last_size = int(size)
        return int(entries)

    async def _replay(self, lost: _Lost) -> None:
        if lost.everything:
            await self._clear()
            return
        if lost.keys:
            await self._delete(args=[self._namespace, *lost.keys])
        if lost.tags:
            await self._invalidate_tags(sorted(lost.tags))
        for pattern in lost.patterns:
            await self._invalidate_pattern(pattern)

    # --- failure handling ---------------------------------------------------------

    async def _attempt(self, call: Callable[[], Awaitable[T]], *, within: float | None = None) -> T | None:
        """``call()``'s result, or ``None`` when Redis is unavailable (never raises)."""
        if self._degraded and not self._probe():
            return None
        try:
            async with asyncio.timeout(within or self._timeout):
                result = await call()
        except _FAILURES as exc:
            self._fail(exc)
            return None
        if self._degraded:
            self._resume()
        return result

    def _probe(self) -> bool:
        """Whether this call may try Redis while degraded: one caller per interval.

        When invalidations were lost, the probe is their replay, run in the background;
        until it succeeds every call stays a miss or a no-op.
        """
        now = self._clock()
        if now < self._retry_at or (self._recovery is not None and not self._recovery.done()):
            return False
        self._retry_at = now + self._retry_interval
        if self._lost:
            self._recovery = asyncio.get_running_loop().create_task(self._recover())
            return False
        return True

    def _resume(self) -> None:
        """Redis answered while degraded: serve again, unless invalidations were lost
        meanwhile (by calls that did not probe) — then replay them first."""
        if not self._lost:
            self._recovered()
        elif self._recovery is None or self._recovery.done():
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        # Invalidations that fail while this runs are added to a fresh _Lost; loop until
        # none is left, so the cache serves again only once all of them are applied.
        while self._lost:
            lost, self._lost = self._lost, _Lost()
            try:
                async with asyncio.timeout(_RECOVERY_TIMEOUT):
                    await self._replay(lost)
            except _FAILURES as exc:
                self._lost.merge(lost)
                self._fail(exc)
                return
        self._recovered()

    def _fail(self, exc: BaseException) -> None:
        self._retry_at = self._clock() + self._retry_interval
        if not self._degraded:
            self._degraded = True
            self._down_since = self._clock()
            _log().warning("cache.redis.unavailable", error=type(exc).__name__, detail=str(exc)[:200])

    def _recovered(self) -> None:
        self._degraded = False
        _log().info("cache.redis.recovered", outage_seconds=round(self._clock() - self._down_since, 3))


def _escape_glob(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
