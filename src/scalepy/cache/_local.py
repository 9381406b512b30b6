"""The in-process L1: a least-recently-used map bounded by entries and by estimated memory.

It holds decoded values that are fresh, for at most `local_ttl`, and only while
the invalidation channel is healthy (the cache decides that). A small index from
tag to keys lets a tag invalidation drop exactly the tagged values; it is bounded
by the L1 itself, since a value leaving the L1 leaves the index.

A value this process computed may be held `Serialized` until its first hit (the
tier decodes it then, see `_tier.py`): `reweigh` then gives it its decoded size.

`generation` grows with every invalidation. A reader notes it before going to
the backend and stores what it read only if it has not changed, so a value read
just before an invalidation (whose message may arrive before the read's reply)
never lands in the L1 after it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scalepy.cache._codec import Codec

__all__ = ("LocalCache", "LocalEntry", "Serialized")


class Serialized(NamedTuple):
    """A value held as its payload until its first hit decodes it."""

    codec: Codec
    """Decodes it into the function's return type."""
    payload: bytes
    """The serializer's bytes, as stored in the backend."""


@dataclass(slots=True, kw_only=True)
class LocalEntry:
    """A value held in the L1: decoded, or `Serialized` until its first hit."""

    value: Any
    """The value, shared by every caller: treat it as read-only; `Serialized` until decoded."""
    size: int
    """Estimated bytes it holds: value, key and bookkeeping (see `_sizing.py`)."""
    expires_at: float
    """When the L1 drops it: the earlier of its end of freshness and `local_ttl`."""
    fresh_until: float
    """When it stops being fresh in the backend, on this process' clock."""
    refresh_from: float
    """When XFetch may start refreshing it early (see `xfetch_horizon`)."""
    load_time: float
    """Seconds it took to compute."""
    tags: tuple[str, ...]
    """Its tags, indexed so a tag invalidation finds it."""


class LocalCache:
    """An LRU of `LocalEntry`, bounded by `max_entries` and `max_bytes`.

    Args:
        max_entries: Most values held, >= 1.
        max_bytes: Most bytes held, as the entries' `size` estimates them; a larger
            value is not held at all.
    """

    __slots__ = ("_bytes", "_entries", "_max_bytes", "_max_entries", "_tags", "generation")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, LocalEntry] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._bytes = 0
        self.generation = 0

    def __len__(self) -> int:
        """Return the number of values held."""
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Estimated bytes held."""
        return self._bytes

    def get(self, key: str, now: float) -> LocalEntry | None:
        """Return `key`'s entry unless absent or expired (an expired one is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: LocalEntry, generation: int) -> None:
        """Hold `entry` unless an invalidation happened since `generation` was read."""
        if generation != self.generation or entry.size > self._max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        self._entries[key] = entry
        self._bytes += entry.size
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        self._evict()

    def reweigh(self, key: str, entry: LocalEntry, size: int) -> None:
        """Give `key`'s held `entry` a new size; drop it if it alone exceeds `max_bytes`."""
        if self._entries.get(key) is not entry:
            return
        self._bytes += size - entry.size
        entry.size = size
        if size > self._max_bytes:
            self._remove(key)
        self._evict()

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def drop(self, key: str) -> None:
        """Drop `key`'s value if held; not an invalidation, so `generation` stays."""
        if key in self._entries:
            self._remove(key)

    def discard(self, keys: Iterable[str]) -> None:
        """Drop these keys' values."""
        self.generation += 1
        for key in keys:
            if key in self._entries:
                self._remove(key)

    def discard_tags(self, tags: Iterable[str]) -> None:
        """Drop every value carrying one of `tags`."""
        self.generation += 1
        for tag in tags:
            for key in list(self._tags.get(tag, ())):
                self._remove(key)

    def clear(self) -> None:
        """Drop every value."""
        self.generation += 1
        self._entries.clear()
        self._tags.clear()
        self._bytes = 0

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._tags[tag]
            keys.discard(key)
            if not keys:
                del self._tags[tag]

    def __repr__(self) -> str:
        return (
            f"<LocalCache entries={len(self._entries)}/{self._max_entries} "
            f"bytes={self._bytes}/{self._max_bytes}>"
        )
