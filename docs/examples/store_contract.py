"""A cache store of your own, checked by the contract in `scalepy.testing`: run this file."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from scalepy.cache import Cache
from scalepy.errors import ConfigurationError
from scalepy.testing import Advance, CacheStoreContract, FakeClock

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.clock import Clock


class DictStore:
    """Entries and tag versions in dicts: the core `CacheStore` operations, no other ability."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[bytes, float]] = {}  # key -> (data, expires at)
        self.tags: dict[str, tuple[int, float]] = {}  # tag -> (version, kept until)

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """The entry and the seconds it has left, if alive."""
        data, expires = self.entries.get(key, (b"", 0.0))
        left = expires - self.clock.now()
        return (data, left) if left > 0 else None

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Store an entry for `ttl` seconds."""
        self.entries[key] = (data, self.clock.now() + ttl)

    async def delete(self, keys: Sequence[str]) -> None:
        """Drop entries."""
        for key in keys:
            self.entries.pop(key, None)

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Each tag's version, 0 once its keep time is over."""
        return tuple(self._version(tag) for tag in tags)

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump each tag, kept at least `keep_for` seconds (never less than before)."""
        for tag in tags:
            kept = max(self.clock.now() + keep_for, self.tags.get(tag, (0, 0.0))[1])
            self.tags[tag] = (self._version(tag) + 1, kept)

    async def clear(self) -> None:
        """Drop everything."""
        self.entries.clear()
        self.tags.clear()

    async def aclose(self) -> None:
        """Nothing to release."""

    def _version(self, tag: str) -> int:
        version, kept = self.tags.get(tag, (0, 0.0))
        return version if kept > self.clock.now() else 0


class TestDictStore(CacheStoreContract):
    """Every check of the contract, on `DictStore`, and its answers against the memory store."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The store's time."""
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock) -> DictStore:
        """An empty store."""
        return DictStore(clock)

    @pytest.fixture
    def advance(self, clock: FakeClock) -> Advance:
        """Time passes instantly on the fake clock."""

        async def advance(seconds: float, keys: Sequence[str], tags: Sequence[str]) -> None:
            clock.advance(seconds)

        return advance


def test_no_silently_stale_l1(store: DictStore) -> None:
    """Without pub/sub the cache refuses an L1 in front of it, unless staleness is accepted."""
    with pytest.raises(ConfigurationError, match="allow_stale_local"):
        Cache(store, local_max_size=1000)
    Cache(store, local_max_size=1000, local_ttl=1.0, allow_stale_local=True)


@pytest.fixture
def store() -> DictStore:
    """An empty store on a fake clock."""
    return DictStore(FakeClock())


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]))
