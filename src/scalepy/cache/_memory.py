"""`MemoryCacheStore`: the in-process reference store, also the test double."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.clock import Clock

__all__ = ("MemoryCacheStore",)


def _ms(seconds: float) -> float:
    # Redis keeps expiries in whole milliseconds; so does the reference.
    return max(round(seconds * 1000), 1) / 1000


class MemoryCacheStore:
    """Cache entries and tag versions in dicts, for one process (tests, single replicas).

    It behaves as the Redis store does, on the time of `clock`: an entry lives
    its TTL in whole milliseconds, a tag's version starts at 0, each invalidation
    adds 1, and a tag forgotten after its `keep_for` is 0 again. Entries are
    kept as bytes, so values go through the serializer exactly as with Redis.

    At most `max_entries` entries are kept; beyond that the least recently used
    one is evicted. Expired entries and tags are dropped when next touched.

    Args:
        clock: Where time comes from; a `MonotonicClock` when `None`.
        max_entries: Most entries kept, >= 1.

    Raises:
        ConfigurationError: `max_entries < 1`.
    """

    __slots__ = ("_clock", "_entries", "_max_entries", "_sweep_at", "_tags")

    def __init__(self, *, clock: Clock | None = None, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be >= 1, got {max_entries!r}")
        self._clock: Clock = clock or MonotonicClock()
        self._max_entries = max_entries
        # key -> (bytes, expiry), least recently used first.
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        # tag -> (version, expiry).
        self._tags: dict[str, tuple[int, float]] = {}
        self._sweep_at = 64  # sweep expired tags when the dict grows past this

    def __len__(self) -> int:
        """Return the number of entries held, expired ones included until touched."""
        return len(self._entries)

    @property
    def max_entries(self) -> int:
        """Most entries kept."""
        return self._max_entries

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """Return `key`'s bytes and the seconds until it expires, or `None` if absent."""
        item = self._entries.get(key)
        if item is None:
            return None
        data, expiry = item
        remaining = expiry - self._clock.now()
        if remaining <= 0:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return data, remaining

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Store `data` under `key` for `ttl` seconds, replacing any entry."""
        self._entries[key] = (data, self._clock.now() + _ms(ttl))
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these entries."""
        for key in keys:
            self._entries.pop(key, None)

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Return each tag's current version (0 if never invalidated or forgotten)."""
        now = self._clock.now()
        return tuple(self._version(tag, now) for tag in tags)

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump each tag's version and keep it at least `keep_for` seconds."""
        now = self._clock.now()
        for tag in tags:
            previous = self._tags.get(tag)
            expiry = now + _ms(keep_for)
            if previous is not None and previous[1] > now:
                expiry = max(expiry, previous[1])
            self._tags[tag] = (self._version(tag, now) + 1, expiry)
        if len(self._tags) > self._sweep_at:
            self._tags = {tag: item for tag, item in self._tags.items() if item[1] > now}
            self._sweep_at = max(64, 2 * len(self._tags))

    def _version(self, tag: str, now: float) -> int:
        item = self._tags.get(tag)
        if item is None or item[1] <= now:
            return 0
        return item[0]

    async def clear(self) -> None:
        """Remove every entry and tag version."""
        self._entries.clear()
        self._tags.clear()

    async def aclose(self) -> None:
        """Do nothing: the store holds no resources."""

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} entries={len(self._entries)} max_entries={self._max_entries}>"
        )
