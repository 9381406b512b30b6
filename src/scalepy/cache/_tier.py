"""The L1 tier: the in-process LRU, kept coherent through the store's invalidation channel.

The L1 is used only while it is `coherent`: on, and (for a store shared by
several processes) while the invalidation channel is healthy, so every
invalidation another process published has been applied. When the channel turns
healthy after an outage, messages may have been lost, so the whole L1 is
dropped. Values are served decoded from their serialized bytes, exactly as a
backend read would give them back, and held only while fresh, for at most `ttl`.
Each decoded value is weighed once by the memory it holds (`_sizing.py`), so the
byte bound bounds memory, not serialized bytes, and a later hit costs nothing more.

A value read from the backend enters decoded (the read decoded it anyway). A
value this process computed enters as its payload (`Serialized`, weighed as those
bytes), and its first hit decodes and weighs it: a miss pays for neither, and a
value never read again is never decoded. Its caller keeps the function's own
object either way; the L1 never holds that object.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from scalepy._loop import cancel_and_wait, started_here
from scalepy.cache._bus import Invalidation
from scalepy.cache._local import LocalEntry, Serialized
from scalepy.cache._policy import xfetch_horizon
from scalepy.cache._sizing import ENTRY_OVERHEAD, held_size
from scalepy.errors import BackendError, SerializationError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from scalepy.cache._flight import Flight
    from scalepy.cache._local import LocalCache
    from scalepy.cache._policy import Policy
    from scalepy.cache._store import InvalidationChannel, PubSubCacheStore
    from scalepy.cache._telemetry import Meter
    from scalepy.clock import Clock

__all__ = ("LocalTier",)


class LocalTier:
    """The L1 of one cache and the channel that keeps it coherent.

    Args:
        local: The LRU, or `None` when the L1 is off.
        pubsub: The store, when it carries invalidations between processes
            (published even with the L1 off, since other processes may have one).
        ttl: Longest time a value stays in the L1.
        flights: The keys being looked up now: an invalidation marks their flights
            `invalidated`, so what they computed is not stored.
    """

    __slots__ = (
        "_channel",
        "_channel_task",
        "_clock",
        "_flights",
        "_meter",
        "_ttl",
        "local",
    )

    def __init__(
        self,
        local: LocalCache | None,
        pubsub: PubSubCacheStore | None,
        *,
        ttl: float,
        clock: Clock,
        meter: Meter,
        flights: Mapping[str, Flight],
    ) -> None:
        self.local = local
        self._ttl = ttl
        self._clock = clock
        self._meter = meter
        self._flights = flights
        self._channel: InvalidationChannel | None = None
        if pubsub is not None:
            self._channel = pubsub.invalidation_channel(self._apply_remote, self._reset)
        self._channel_task: asyncio.Task[None] | None = None

    @property
    def channel(self) -> InvalidationChannel | None:
        """The invalidation channel of a shared store."""
        return self._channel

    @property
    def coherent(self) -> bool:
        """Whether the L1 may be used now: on, and told about every invalidation."""
        return self.local is not None and (self._channel is None or self._channel.healthy)

    @property
    def generation(self) -> int:
        """Grows with every invalidation; see `LocalCache.put`."""
        return 0 if self.local is None else self.local.generation

    def get(self, key: str, now: float) -> LocalEntry | None:
        """Return `key`'s L1 entry, its value decoded, while the L1 is coherent, else `None`."""
        local = self.local
        if local is None or (self._channel is not None and not self._channel.healthy):
            return None
        entry = local.get(key, now)
        if entry is None or type(entry.value) is not Serialized:
            return entry
        codec, payload = entry.value
        try:
            entry.value = codec.loads(key, payload)
        except SerializationError:  # stored, yet not readable as its type: the backend misses too
            local.drop(key)
            return None
        local.reweigh(key, entry, _weigh(key, entry.value))
        return entry

    def start_soon(self) -> None:
        """Start listening for invalidations in the background, if the L1 needs it."""
        if (
            self.local is not None
            and self._channel is not None
            and not started_here(self._channel_task)  # never, or in an earlier event loop
        ):
            self._channel_task = asyncio.get_running_loop().create_task(self._channel.start())

    async def start(self) -> None:
        """Listen for invalidations; return once the channel is healthy (or a bounded wait)."""
        self.start_soon()
        if self._channel_task is not None:
            await asyncio.shield(self._channel_task)

    def keep(
        self,
        key: str,
        value: Any,
        *,
        fresh: float,
        load_time: float,
        tags: tuple[str, ...],
        policy: Policy,
        generation: int,
    ) -> None:
        """Hold a fresh value for the earlier of `fresh` seconds and the L1 TTL.

        `value` is either decoded or `Serialized` (decoded on its first hit).
        """
        local = self.local
        if local is None or not self.coherent:
            return
        now = self._clock.now()
        fresh_until = now + fresh
        entry = LocalEntry(
            value=value,
            size=_weigh(key, value),
            expires_at=min(fresh_until, now + self._ttl),
            fresh_until=fresh_until,
            refresh_from=xfetch_horizon(fresh_until, load_time, policy.xfetch_beta),
            load_time=load_time,
            tags=tags,
        )
        local.put(key, entry, generation)
        self._meter.local_size.record(len(local), self._meter.labels)

    def invalidate(
        self, keys: Sequence[str] = (), tags: Sequence[str] = (), *, clear: bool = False
    ) -> None:
        """Drop values from this process' L1; loads of these keys running now will not store."""
        flights = self._flights
        for key in flights if clear else keys:
            if (flight := flights.get(key)) is not None:
                flight.invalidated = True
        local = self.local
        if local is None:
            return
        if clear:
            local.clear()
        else:
            if keys:
                local.discard(keys)
            if tags:
                local.discard_tags(tags)
        self._meter.local_size.record(len(local), self._meter.labels)

    async def publish(
        self, keys: Sequence[str] = (), tags: Sequence[str] = (), *, clear: bool = False
    ) -> None:
        """Tell the other processes to drop these values; a failure is counted, not raised.

        Their L1 copies then live at most the L1 TTL longer.
        """
        if self._channel is None:
            return
        try:
            await self._channel.publish(Invalidation(tuple(keys), tuple(tags), clear))
        except BackendError as exc:
            self._meter.backend_error("publish", exc)

    def _apply_remote(self, invalidation: Invalidation) -> None:
        self.invalidate(invalidation.keys, invalidation.tags, clear=invalidation.clear)
        meter = self._meter
        if invalidation.clear:
            meter.invalidated("clear", "remote")
        if invalidation.keys:
            meter.invalidated("key", "remote", len(invalidation.keys))
        if invalidation.tags:
            meter.invalidated("tag", "remote", len(invalidation.tags))

    def _reset(self) -> None:
        self.invalidate(clear=True)

    async def aclose(self) -> None:
        """Stop listening."""
        task, self._channel_task = self._channel_task, None
        await cancel_and_wait(task)  # a task of an earlier event loop is not awaited
        if self._channel is not None:
            await self._channel.aclose()

    def __repr__(self) -> str:
        return f"<LocalTier {self.local!r} coherent={self.coherent}>"


def _weigh(key: str, value: Any) -> int:
    """Return the bytes `key`'s L1 entry holds: a payload's bytes, or the decoded value."""
    held = sys.getsizeof(value.payload) if type(value) is Serialized else held_size(value)
    return held + sys.getsizeof(key) + ENTRY_OVERHEAD
