"""`CacheStoreContract`: the behaviour every `CacheStore` shows, checked like the memory reference.

The checks are plain `async def test_*` methods with bare asserts, so this module
needs no test framework; pytest collects them from a subclass named `Test...`
that provides two fixtures: `store`, the store under test (empty), and `advance`,
which moves the store's time forward (see `Advance`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from scalepy.cache._memory import MemoryCacheStore
from scalepy.cache._store import LockingCacheStore, LockOnMissCacheStore
from scalepy.testing._clock import FakeClock

if TYPE_CHECKING:
    from scalepy.cache._store import CacheStore

__all__ = ("Advance", "CacheStoreContract")

Advance: TypeAlias = Callable[[float, Sequence[str], Sequence[str]], Awaitable[None]]
"""`advance(seconds, keys, tags)`: move the store's time `seconds` forward.

A store on a `FakeClock` advances the clock; a server with its own clock can
shorten the TTL of the named entries (`keys`) and tag versions (`tags`) instead.
"""

SLACK = 0.5
"""Seconds a remaining TTL may have run down in real time during a check."""

Operation = tuple[Any, ...]

REFERENCE_SCRIPT: tuple[Operation, ...] = (
    ("set", "a", b"1", 3.0),
    ("set", "b", b"2", 6.0),
    ("invalidate", ("x",), 4.0),
    ("advance", 2.0),
    ("get", "a"),
    ("get", "b"),
    ("versions",),
    ("delete", "a"),
    ("invalidate", ("x", "y"), 1.0),
    ("advance", 1.5),
    ("get", "a"),
    ("get", "b"),
    ("versions",),
    ("advance", 1.0),
    ("versions",),
    ("set", "a", b"3", 1.0),
    ("advance", 3.0),
    ("get", "a"),
    ("get", "b"),
    ("versions",),
)
"""Every expiry boundary sits at least `SLACK` away from the time it is read at."""


async def observe(
    store: CacheStore,
    advance: Advance,
    script: Sequence[Operation],
) -> list[Any]:
    """Apply `script` to `store`; return what each read saw (TTLs rounded to `SLACK`)."""
    seen: list[Any] = []
    for operation in script:
        match operation:
            case ("set", str(key), bytes(data), float(ttl)):
                await store.set(key, data, ttl)
            case ("get", str(key)):
                found = await store.get(key)
                seen.append(None if found is None else (found[0], round(found[1] / SLACK)))
            case ("delete", str(key)):
                await store.delete([key])
            case ("invalidate", tuple(tags), float(keep)):
                await store.invalidate_tags(list(tags), keep)
            case ("versions",):
                seen.append(await store.tag_versions(["x", "y"]))
            case ("advance", float(seconds)):
                await advance(seconds, ["a", "b"], ["x", "y"])
    return seen


class CacheStoreContract:
    """The behaviour every `CacheStore` shows; subclass it to check a store of your own.

    Provide the fixtures `store` (an empty store) and `advance` (see `Advance`)
    and name the subclass `Test...`; the checks are async, so run them with
    pytest-asyncio (`asyncio_mode = "auto"`) or anyio. Optional abilities are
    checked only where the store declares them (`LockingCacheStore`,
    `LockOnMissCacheStore`).

    See docs/examples/store_contract.py ("Writing a backend" in the docs) for a
    whole store checked this way.
    """

    async def test_entries_are_stored_with_their_time_to_live(self, store: CacheStore) -> None:
        """A stored entry comes back with what is left of its TTL; set replaces it."""
        assert await store.get("a") is None
        await store.set("a", b"one", 10.0)
        data, left = await store.get("a") or (b"", 0.0)
        assert b"one" == data
        assert 10.0 - SLACK <= left <= 10.0
        await store.set("a", b"two", 20.0)
        data, left = await store.get("a") or (b"", 0.0)
        assert (b"two", True) == (data, left > 10.0)

    async def test_entries_expire_after_their_ttl(
        self,
        store: CacheStore,
        advance: Advance,
    ) -> None:
        """Once its TTL has run out an entry is gone."""
        await store.set("a", b"one", 2.0)
        await store.set("b", b"two", 5.0)
        await advance(2.0, ["a", "b"], [])
        assert await store.get("a") is None
        assert await store.get("b") is not None

    async def test_delete_removes_entries(self, store: CacheStore) -> None:
        """Deleting removes exactly the named entries; absent ones are ignored."""
        for key in "abc":
            await store.set(key, key.encode(), 10.0)
        await store.delete(["a", "c", "missing"])
        assert [None, b"b", None] == [(await store.get(key) or (None,))[0] for key in "abc"]

    async def test_tag_versions_count_invalidations(self, store: CacheStore) -> None:
        """A tag starts at version 0 and each invalidation adds one."""
        assert (0, 0) == await store.tag_versions(["x", "y"])
        await store.invalidate_tags(["x"], 60.0)
        await store.invalidate_tags(["x", "y"], 60.0)
        assert (2, 1, 0) == await store.tag_versions(["x", "y", "z"])
        assert () == await store.tag_versions([])

    async def test_tag_versions_are_kept_then_forgotten(
        self,
        store: CacheStore,
        advance: Advance,
    ) -> None:
        """A version lives at least `keep_for`; a shorter later `keep_for` does not cut it."""
        await store.invalidate_tags(["x"], 10.0)
        await store.invalidate_tags(["x"], 1.0)
        await advance(5.0, [], ["x"])
        assert (2,) == await store.tag_versions(["x"])
        await advance(5.0, [], ["x"])
        assert (0,) == await store.tag_versions(["x"])

    async def test_clear_removes_entries_and_tags(self, store: CacheStore) -> None:
        """Clearing empties the store's namespace."""
        await store.set("a", b"one", 10.0)
        await store.invalidate_tags(["x"], 10.0)
        await store.clear()
        assert (None, (0,)) == (await store.get("a"), await store.tag_versions(["x"]))

    async def test_a_locking_store_has_one_holder_per_key(self, store: CacheStore) -> None:
        """One holder at a time; only the holder's token releases the lock (if it locks)."""
        if not isinstance(store, LockingCacheStore):
            return
        token = await store.acquire_lock("a")
        assert token is not None
        assert await store.acquire_lock("a") is None
        assert await store.acquire_lock("b") is not None
        await store.release_lock("a", "not-the-token")
        assert await store.acquire_lock("a") is None
        await store.release_lock("a", token)
        assert await store.acquire_lock("a") is not None

    async def test_a_read_on_a_miss_takes_the_lock_only_when_free(self, store: CacheStore) -> None:
        """`get_or_lock`: a hit locks nothing; a miss takes the lock once (if it locks on miss)."""
        if not isinstance(store, LockOnMissCacheStore):
            return
        await store.set("hit", b"one", 10.0)
        hit = await store.get_or_lock("hit")
        assert isinstance(hit, tuple)
        assert (b"one", True) == (hit[0], 10.0 - SLACK <= hit[1] <= 10.0)
        held = await store.acquire_lock("hit")
        assert held is not None  # the hit took no lock
        await store.release_lock("hit", held)
        token = await store.get_or_lock("miss")
        assert isinstance(token, str)
        assert (None, None) == (await store.get_or_lock("miss"), await store.acquire_lock("miss"))
        await store.release_lock("miss", token)
        assert isinstance(await store.get_or_lock("miss"), str)

    async def test_agrees_with_the_memory_reference(
        self,
        store: CacheStore,
        advance: Advance,
    ) -> None:
        """Entries, remaining TTLs and tag versions read as on `MemoryCacheStore`, step by step."""
        clock = FakeClock()

        async def advance_reference(
            seconds: float, keys: Sequence[str], tags: Sequence[str]
        ) -> None:
            clock.advance(seconds)

        reference = await observe(
            MemoryCacheStore(clock=clock), advance_reference, REFERENCE_SCRIPT
        )
        assert reference == await observe(store, advance, REFERENCE_SCRIPT)
