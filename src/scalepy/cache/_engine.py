"""The read-through path: L1, single flight, backend read, cross-process lock, load, write.

One lookup of a key goes, in order:

1. the L1 (when on and coherent): a fresh value is served at once, and XFetch
   may schedule a background refresh;
2. the key's in-process flight: concurrent callers of the key share the first
   caller's lookup;
3. the backend: the entry and its tags' current versions, in one tick. While
   lookups mostly miss, a `LockOnMissCacheStore` takes the entry's load lock in
   the same step on a miss, so an uncontended miss pays no round trip for the
   lock; while they mostly hit, the plain read is used, which costs a hit less
   (on Redis no script: `PTTL` and `GET`), and a rare miss pays that round trip
   (see `_LOCK_IN_READ_ABOVE`);
4. on a miss without the lock, the store's load lock (a `LockingCacheStore`): one
   process loads, the others re-read with jittered, growing backoff, never longer
   than `lock_wait`;
5. the loader, then the write and the lock's release: one step on a
   `ReleaseOnSetCacheStore` (one script on Redis), else one pipeline (SET
   first). The call returns once its entry is stored, so an invalidation
   issued after the call returned (by any process) always wins over it.

While the backend is failing the `BackendGuard` skips steps 3-4 at once: the
loader answers, with no added wait, until a probe finds the backend back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from scalepy.cache._entry import Found, decode_entry
from scalepy.cache._flight import Abandoned, Flight
from scalepy.cache._policy import Verdict, judge
from scalepy.cache._store import LockOnMissCacheStore, ReleaseOnSetCacheStore
from scalepy.errors import BackendError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from scalepy.backends.guard import BackendGuard
    from scalepy.cache._codec import Codec
    from scalepy.cache._entry import Entry
    from scalepy.cache._policy import Policy
    from scalepy.cache._store import CacheStore, LockingCacheStore
    from scalepy.cache._telemetry import Meter
    from scalepy.cache._tier import LocalTier
    from scalepy.cache._writes import Prepared, Writer
    from scalepy.clock import Clock

__all__ = ("MISSING", "SERVED", "UNAVAILABLE", "Engine", "Read")

_FRESH, _REFRESH, _STALE = Verdict.FRESH, Verdict.REFRESH, Verdict.STALE
_STALE_IF_ERROR, _EXPIRED = Verdict.STALE_IF_ERROR, Verdict.EXPIRED
SERVED: Final = (_FRESH, _REFRESH, _STALE)  # a tuple: `in` tests identity first
"""Verdicts whose entry is returned as found (stale ones while refreshed in the background)."""
_FIRST_BACKOFF: Final = 0.005
_MAX_BACKOFF: Final = 0.2
_MISS_WEIGHT: Final = 1 / 16
"""Weight of the latest lookup in the decayed share of lookups that missed."""
_LOCK_IN_READ_ABOVE: Final = 0.1
"""Share of misses above which a read takes the load lock on a miss.

A read that locks (a script on Redis) costs a hit a few microseconds more than a
plain read (Redis: ~3.6 us of server time for the script, measured with `INFO
commandstats`); a miss read plainly costs one more round trip (~40-60 us) for the
lock. Locking in the read pays from about one miss in ten lookups.
"""
_logger = logging.getLogger("scalepy.cache")


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING: Final = _Sentinel("MISSING")
"""`Engine.lookup` found no fresh value."""
UNAVAILABLE: Final = _Sentinel("UNAVAILABLE")
"""The backend could not be asked."""


class Read(NamedTuple):
    """What one backend read learned: the entry (if usable) and the tags' versions."""

    found: Found | _Sentinel | None
    """The entry; `None` on a miss, `UNAVAILABLE` when the backend failed."""
    versions: tuple[int, ...] | None
    """The tags' versions; `None` when unknown, and then nothing may be written."""
    token: str | None = None
    """The load lock's token, when the read took the lock on a miss (`lock=True`)."""


def _draw() -> float:
    return 1.0 - random.random()  # in (0, 1]: XFetch takes its logarithm


class Engine:
    """Runs lookups for one `Cache`; see the module docstring."""

    __slots__ = (
        "_codec",
        "_lock_wait",
        "_locks",
        "_locks_on_miss",
        "_misses",
        "_pending",
        "_refreshing",
        "_releases_on_set",
        "_store",
        "clock",
        "flights",
        "guard",
        "meter",
        "tier",
        "writer",
    )

    def __init__(
        self,
        store: CacheStore,
        locks: LockingCacheStore | None,
        *,
        writer: Writer,
        tier: LocalTier,
        flights: dict[str, Flight],
        codec: Codec,
        clock: Clock,
        guard: BackendGuard,
        meter: Meter,
        lock_wait: float,
    ) -> None:
        self._store = store
        self._locks = locks
        self._locks_on_miss = locks if isinstance(locks, LockOnMissCacheStore) else None
        self._releases_on_set = locks if isinstance(locks, ReleaseOnSetCacheStore) else None
        self.writer = writer
        self.tier = tier
        self.flights = flights
        self._codec = codec
        self.clock = clock
        self.guard = guard
        self.meter = meter
        self._lock_wait = lock_wait
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._misses = 1.0  # decayed share of lookups that missed: a new cache expects misses

    @property
    def codec(self) -> Codec:
        """The cache's codec: how untyped values become bytes."""
        return self._codec

    @property
    def in_flight(self) -> int:
        """Keys being looked up now."""
        return len(self.flights)

    # -- lookups --------------------------------------------------------------

    def local_hit(self, key: str) -> Any:
        """Return `key`'s L1 value if fresh and not yet due for a refresh (a hit), or `MISSING`.

        The common path of `fetch`, which a caller tries before it builds what `fetch`
        needs for anything else (tags, the loader).
        """
        tier = self.tier
        if tier.local is None:
            return MISSING
        now = self.clock.now()
        hit = tier.get(key, now)
        if hit is None or now >= hit.refresh_from:
            return MISSING
        self.meter.hit("l1")
        return hit.value

    async def fetch(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        policy: Policy,
        tags: tuple[str, ...],
        condition: Callable[[Any], bool] | None,
    ) -> Any:
        """Return `key`'s value from the L1, the backend or `load`, as the module doc says."""
        tier = self.tier
        if tier.local is not None:
            now = self.clock.now()
            hit = tier.get(key, now)
            if hit is not None:
                if now >= hit.refresh_from and (
                    judge(hit.fresh_until - now, 0.0, hit.load_time, policy, _draw()) is _REFRESH
                ):
                    self.refresh_soon(key, load, policy, tags, condition)
                self.meter.hit("l1")
                return hit.value
        while (flight := self.flights.get(key)) is not None and not flight.invalidated:
            self.meter.joined()
            with contextlib.suppress(Abandoned):
                return await flight.join()
        flight = self.flights[key] = Flight()  # replaces an invalidated one
        try:
            value = await self._resolve(flight, key, load, policy, tags, condition)
        except BaseException as exc:
            flight.fail(exc)
            raise
        finally:
            self.land(key, flight)
        flight.resolve(value)
        return value

    def land(self, key: str, flight: Flight) -> None:
        """Close `key`'s flight: later callers look the key up again."""
        if self.flights.get(key) is flight:
            del self.flights[key]

    async def lookup(self, key: str, policy: Policy) -> Any:
        """Return `key`'s fresh value without loading (for `Cache.get`), or `MISSING`."""
        tier = self.tier
        if tier.local is not None:
            hit = tier.get(key, self.clock.now())
            if hit is not None:
                self.meter.hit("l1")
                return hit.value
        generation = tier.generation
        found, _, _ = await self.read(key, (), policy)
        if isinstance(found, Found) and found.verdict in (_FRESH, _REFRESH):
            self.writer.keep_found(key, found, policy, generation)
            self.meter.hit("l2")
            return found.value
        return MISSING

    async def _resolve(
        self,
        flight: Flight,
        key: str,
        load: Callable[[], Awaitable[Any]],
        policy: Policy,
        tags: tuple[str, ...],
        condition: Callable[[Any], bool] | None,
    ) -> Any:
        self.tier.start_soon()
        generation = self.tier.generation
        found, versions, token = await self.read(
            key, tags, policy, lock=self._misses > _LOCK_IN_READ_ABOVE
        )
        if isinstance(found, Found) and found.verdict in SERVED:
            self._misses -= self._misses * _MISS_WEIGHT
            self.serve(key, found, policy, generation, load, tags, condition)
            return found.value
        fallback = found if isinstance(found, Found) else None  # within stale-if-error
        if found is UNAVAILABLE:
            self.meter.error()
        else:
            self._misses += (1.0 - self._misses) * _MISS_WEIGHT
            self.meter.miss()
            if self._locks is not None and token is None:  # contended, or no lock on miss
                waited = await self._lock_or_wait(key, tags, policy)
                if isinstance(waited, Found):
                    self.writer.keep_found(key, waited, policy, generation)
                    return waited.value
                token, versions = waited
        try:
            value, load_time = await self.run_loader(load)
        except BaseException as exc:
            self._unlock_soon(key, token)
            if fallback is None or not isinstance(exc, Exception):
                raise
            self.meter.served_stale("l2")
            return fallback.value
        try:
            entry = self.writer.prepare(
                key, flight, value, policy, tags, versions, load_time, condition
            )
        except BaseException:  # the serializer or `condition` raised: free the lock now
            self._unlock_soon(key, token)
            raise
        if entry is not None:
            self.writer.keep(key, entry, load_time, tags, policy, generation)
        await self._store_and_unlock(flight, key, entry, token)
        return value

    def serve(
        self,
        key: str,
        found: Found,
        policy: Policy,
        generation: int,
        load: Callable[[], Awaitable[Any]],
        tags: tuple[str, ...],
        condition: Callable[[Any], bool] | None,
    ) -> None:
        """Count a backend entry served (its verdict in `SERVED`); keep or refresh it as due."""
        if found.verdict is _STALE:
            self.meter.served_stale("l2")
        else:
            self.writer.keep_found(key, found, policy, generation)
            self.meter.hit("l2")
        if found.verdict is not _FRESH:
            self.refresh_soon(key, load, policy, tags, condition)

    async def _store_and_unlock(
        self, flight: Flight, key: str, entry: Prepared | None, token: str | None
    ) -> None:
        if entry is None:
            if token is not None:
                await self._release(key, token)
        elif token is None:
            await self.writer.store(key, entry, flight)
        elif self._releases_on_set is not None:  # one command: no tasks, fewer loop turns
            if not await self.writer.store_and_release(
                key, entry, flight, self._releases_on_set, token
            ):
                await self._release(key, token)
        else:  # submitted in this order, in one tick: one pipeline, SET before the unlock
            await asyncio.gather(self.writer.store(key, entry, flight), self._release(key, token))

    async def read(
        self, key: str, tags: Sequence[str], policy: Policy, *, lock: bool = False
    ) -> Read:
        """Read `key`'s entry and `tags`' versions together, and judge the entry.

        With `lock`, a `LockOnMissCacheStore` also takes the load lock on a miss.
        """
        if not self.guard.available():
            return Read(UNAVAILABLE, None)
        store = self._store
        versions: tuple[int, ...] = ()
        try:
            get = (
                self._locks_on_miss.get_or_lock(key)
                if lock and self._locks_on_miss is not None
                else store.get(key)
            )
            if tags:
                stored, versions = await asyncio.gather(get, store.tag_versions(tags))
            else:
                stored = await get
            self.guard.record_success()
            if stored is None:
                return Read(None, versions)
            if isinstance(stored, str):
                return Read(None, versions, stored)
            data, remaining = stored
            entry = decode_entry(data)
            if entry.tags and not await self._tags_current(entry, tags, versions):
                return Read(None, versions)
            verdict = judge(remaining, entry.stale_window, entry.load_time, policy, _draw())
            if verdict is _EXPIRED:
                return Read(None, versions)
            codec = policy.codec or self._codec
            value = None if entry.is_none else codec.loads(key, entry.payload)
        except BackendError as exc:
            self.writer.failed("read", exc)
            return Read(UNAVAILABLE, None)
        except (ValueError, SerializationError):
            self.meter.undecodable.record(1, self.meter.labels)
            return Read(None, versions)
        return Read(Found(value, entry, remaining, verdict), versions)

    async def _tags_current(
        self, entry: Entry, tags: Sequence[str], versions: tuple[int, ...]
    ) -> bool:
        current = dict(zip(tags, versions, strict=True))
        unknown = [tag for tag, _ in entry.tags if tag not in current]
        if unknown:  # the entry carries tags the caller did not name: one more round trip
            current.update(zip(unknown, await self._store.tag_versions(unknown), strict=True))
        return all(current[tag] == version for tag, version in entry.tags)

    async def _lock_or_wait(
        self, key: str, tags: tuple[str, ...], policy: Policy
    ) -> Found | tuple[str | None, tuple[int, ...] | None]:
        """Take the load lock, or wait for the process holding it to store the value.

        The lock attempt and a re-read go out in one pipeline, lock first: an entry
        the re-read finds was stored before the lock was taken, so the holder never
        loads what another process has just stored.

        Returns:
            The entry another process stored, or (the lock's token or `None`, the
            tags' versions to write with) for the caller to load.
        """
        deadline = self.clock.now() + self._lock_wait
        delay = _FIRST_BACKOFF
        while True:
            token, (found, versions, _) = await asyncio.gather(
                self._try_lock(key), self.read(key, tags, policy)
            )
            if isinstance(found, Found) and found.verdict is not _STALE_IF_ERROR:
                self._unlock_soon(key, token if isinstance(token, str) else None)
                return found
            if token is not None or found is UNAVAILABLE or self.clock.now() >= deadline:
                return (token if isinstance(token, str) else None), versions
            await self.clock.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 1.5, _MAX_BACKOFF)

    async def _try_lock(self, key: str) -> str | _Sentinel | None:
        assert self._locks is not None
        try:
            return await self._locks.acquire_lock(key)
        except BackendError as exc:
            self.writer.failed("lock", exc)
            return UNAVAILABLE

    def _unlock_soon(self, key: str, token: str | None) -> None:
        """Release `key`'s lock (if `token`) in a task the caller does not wait for."""
        if token is not None:
            task = asyncio.get_running_loop().create_task(self._release(key, token))
            self._pending.add(task)  # `settle` and `aclose` wait for it
            task.add_done_callback(self._pending.discard)

    async def _release(self, key: str, token: str) -> None:
        assert self._locks is not None
        try:
            await self._locks.release_lock(key, token)
        except BackendError as exc:  # the lock expires by itself
            self.writer.failed("unlock", exc)

    async def run_loader(self, load: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
        """Run `load`, counting and timing it; return its value and duration."""
        meter = self.meter
        meter.loads += 1
        started = self.clock.now()
        try:
            value = await load()
        except Exception:
            meter.load_errors += 1
            raise
        elapsed = self.clock.now() - started
        meter.load_duration.record(elapsed, meter.labels)
        return value, elapsed

    # -- background work ------------------------------------------------------

    def refresh_soon(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        policy: Policy,
        tags: tuple[str, ...],
        condition: Callable[[Any], bool] | None,
    ) -> None:
        """Recompute `key` in a background task, unless one is already at it."""
        if key in self._refreshing:
            return
        task = asyncio.get_running_loop().create_task(
            self._refresh(key, load, policy, tags, condition), name=f"scalepy.cache.refresh:{key}"
        )
        self._refreshing[key] = task
        task.add_done_callback(lambda _: self._refreshing.pop(key, None))

    async def _refresh(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        policy: Policy,
        tags: tuple[str, ...],
        condition: Callable[[Any], bool] | None,
    ) -> None:
        if not self.guard.available():
            return
        token: str | None = None
        if self._locks is not None:
            taken = await self._try_lock(key)
            if not isinstance(taken, str):
                return  # another process refreshes it, or the backend is failing
            token = taken
        try:
            generation = self.tier.generation
            versions = await self._store.tag_versions(tags) if tags else ()
            value, load_time = await self.run_loader(load)
            await self.writer.write(
                key, value, policy, tags, versions, load_time, generation, condition
            )
        except BackendError as exc:
            self.writer.failed("refresh", exc)
        except Exception:  # the current value keeps serving; run_loader counted the failure
            _logger.debug("background refresh of %r failed", key, exc_info=True)
        finally:
            if token is not None:
                await self._release(key, token)

    async def settle(self) -> None:
        """Wait until the background refreshes and unlocks started so far have finished."""
        await asyncio.gather(*self._refreshing.values(), *self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop background refreshes; let pending unlocks finish (they are bounded)."""
        for task in self._refreshing.values():
            task.cancel()
        await self.settle()
