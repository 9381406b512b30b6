"""The narrow contracts a cache backend implements, one per ability.

`CacheStore` is what every backend offers: entries as bytes with a time to live,
and per-tag version counters. The cache assumes nothing more of a store: unless
it is the process's own `MemoryCacheStore`, other processes may change it. Each
further ability is a protocol of its own, so a store cannot claim one it lacks:

- `LockingCacheStore`: a short load lock, so one process computes a missing
  value while the others wait (without it, every process loads on a miss);
- `LockOnMissCacheStore`: a locking store that reads an entry and, on a miss,
  takes its load lock in the same step (one round trip for an uncontended miss);
- `ReleaseOnSetCacheStore`: a locking store that writes an entry and releases
  its load lock in the same step (one round trip, one command, for the write);
- `PubSubCacheStore`: a channel telling every process which values to drop from
  its in-process L1. Without it an L1 in front of a shared store would serve
  values other processes changed, so the cache refuses one unless told to
  accept staleness up to `local_ttl` (`allow_stale_local=True`);
- `SharedCacheStore`: both, as the Redis store offers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from scalepy.cache._bus import Invalidation

__all__ = (
    "CacheStore",
    "InvalidationChannel",
    "LockOnMissCacheStore",
    "LockingCacheStore",
    "PubSubCacheStore",
    "ReleaseOnSetCacheStore",
    "SharedCacheStore",
)


@runtime_checkable
class CacheStore(Protocol):
    """Entries and tag versions, in one process (memory) or shared by every replica (Redis).

    Keys are the cache's logical keys; the store maps them to its own layout.
    Time to live is the store's business: the cache never sends a clock reading,
    it only reads how long an entry has left.
    """

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """Return `key`'s bytes and the seconds until it expires, or `None` if absent.

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Store `data` under `key` for `ttl` seconds (> 0), replacing any entry.

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Remove these entries; absent keys are ignored.

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Return each tag's current version, 0 for a tag never invalidated (or forgotten).

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump each tag's version, and keep it at least `keep_for` seconds.

        `keep_for` must outlast every entry written with an older version, or a
        forgotten tag (version 0 again) would revive entries written before.

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def clear(self) -> None:
        """Remove every entry and tag version of this store's namespace.

        Raises:
            BackendError: The backend failed (shared stores only).
        """
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections)."""
        ...


class InvalidationChannel(Protocol):
    """Carries L1 invalidations between the processes sharing a store (see `_bus.py`)."""

    async def start(self) -> None:
        """Subscribe; returns once subscribed or after a bounded wait."""
        ...

    @property
    def healthy(self) -> bool:
        """Whether messages are known to arrive now; the L1 is bypassed while not."""
        ...

    @property
    def staleness_bound(self) -> float:
        """Worst-case seconds another process may serve a value after its invalidation."""
        ...

    async def publish(self, invalidation: Invalidation) -> None:
        """Tell every other process what to drop.

        Raises:
            BackendError: The message could not be sent.
        """
        ...

    async def aclose(self) -> None:
        """Unsubscribe and stop."""
        ...


@runtime_checkable
class LockingCacheStore(CacheStore, Protocol):
    """A store with a load lock per key, so one process loads a missing value at a time."""

    async def acquire_lock(self, key: str) -> str | None:
        """Take `key`'s load lock; return a token when taken, `None` when another holds it.

        Raises:
            BackendError: The backend failed.
        """
        ...

    async def release_lock(self, key: str, token: str) -> None:
        """Release `key`'s load lock if `token` still holds it.

        Raises:
            BackendError: The backend failed.
        """
        ...


@runtime_checkable
class LockOnMissCacheStore(LockingCacheStore, Protocol):
    """A locking store whose read takes a missing entry's load lock in the same step."""

    async def get_or_lock(self, key: str) -> tuple[bytes, float] | str | None:
        """Return `key`'s bytes and seconds left, or on a miss try to take its load lock.

        Returns:
            (bytes, seconds left) on a hit; on a miss the lock's token when taken
            (for `release_lock`), `None` when another process holds it.

        Raises:
            BackendError: The backend failed.
        """
        ...


@runtime_checkable
class ReleaseOnSetCacheStore(LockingCacheStore, Protocol):
    """A locking store whose write releases the entry's load lock in the same step."""

    async def set_and_release(self, key: str, data: bytes, ttl: float, token: str) -> None:
        """Store `data` under `key` for `ttl` seconds, then release `key`'s load lock.

        Like `set` followed by `release_lock(key, token)`, in one step: the entry is
        stored before the lock is free.

        Raises:
            BackendError: The backend failed (whether the entry was stored is then
                unknown; the lock frees itself after its time to live).
        """
        ...


@runtime_checkable
class PubSubCacheStore(CacheStore, Protocol):
    """A store that carries invalidations to every process, so their L1s stay coherent."""

    def invalidation_channel(
        self, on_invalidation: Callable[[Invalidation], None], on_reset: Callable[[], None]
    ) -> InvalidationChannel:
        """Return a channel delivering other processes' invalidations to `on_invalidation`.

        `on_reset` is called when messages may have been lost (a reconnect).
        """
        ...


@runtime_checkable
class SharedCacheStore(LockingCacheStore, PubSubCacheStore, Protocol):
    """A store shared by several processes with both abilities: a load lock and pub/sub."""
