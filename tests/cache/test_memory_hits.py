"""How a `memory://` cache serves hits: decoded, from its L1, never through the serializer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalepy.cache import Cache, MemoryCacheStore
from scalepy.serializers import JsonSerializer

if TYPE_CHECKING:
    from scalepy.testing import FakeClock


class CountingSerializer(JsonSerializer):
    """JSON, counting the values it decodes."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded = 0

    def loads(self, data: bytes) -> Any:
        """Decode `data`, counting it."""
        self.decoded += 1
        return super().loads(data)


async def record(item: int) -> dict[str, Any]:
    """A small record, as a database row would give."""
    return {"id": item, "tags": ["home"]}


async def test_memory_hits_skip_the_serializer(clock: FakeClock) -> None:
    """A `memory://` cache decodes a value once, on its first hit; later hits come from the L1."""
    serializer = CountingSerializer()
    cache = Cache("memory://", serializer=serializer, clock=clock)
    cached = cache.cached(ttl=60)(record)
    for _ in range(100):
        assert {"id": 1, "tags": ["home"]} == await cached(1)
    stats = cache.statistics()
    assert (1, 99, 98, 1) == (serializer.decoded, stats.hits, stats.local_hits, stats.misses)
    assert (1, True) == (stats.local_entries, stats.local_coherent)


async def test_memory_hits_return_the_decoded_value(clock: FakeClock) -> None:
    """Hits return what the serializer decodes (a tuple comes back a list), one shared object."""
    cache = Cache("memory://", clock=clock)

    async def pair() -> Any:
        return (1, 2)

    cached = cache.cached(ttl=60)(pair)
    assert (1, 2) == await cached()
    first, second = await cached(), await cached()
    assert ([1, 2], True) == (first, first is second)


async def test_local_max_size_0_keeps_memory_hits_private(clock: FakeClock) -> None:
    """With the L1 off, each `memory://` hit decodes its own copy: mutating it changes no other."""
    serializer = CountingSerializer()
    cache = Cache("memory://", serializer=serializer, clock=clock, local_max_size=0)
    cached = cache.cached(ttl=60)(record)
    await cached(1)
    mutated = await cached(1)
    mutated["tags"].append("changed")
    assert {"id": 1, "tags": ["home"]} == await cached(1)
    assert (2, 0) == (serializer.decoded, cache.statistics().local_hits)


async def test_a_store_object_gets_no_l1_unless_asked(clock: FakeClock) -> None:
    """Caches sharing one store object see each other's writes at once: no L1 by default."""
    store = MemoryCacheStore(clock=clock)
    first, second = Cache(store, clock=clock), Cache(store, clock=clock)
    await first.set("k", 1, tags=["t"])
    assert 1 == await second.get("k")
    await first.set("k", 2, tags=["t"])
    assert 2 == await second.get("k")
    await first.invalidate_tags("t")
    assert None is await second.get("k")
    assert (0, 0) == (first.statistics().local_entries, second.statistics().local_entries)


async def test_memory_values_are_decoded_on_their_first_read(clock: FakeClock) -> None:
    """Values computed but never read again are never decoded: a miss costs what it did."""
    serializer = CountingSerializer()
    cache = Cache("memory://", serializer=serializer, clock=clock)
    cached = cache.cached(ttl=60)(record)
    for item in range(100):
        await cached(item)
    await cache.set("manual", {"id": 0})
    assert (0, 0, 101) == (serializer.decoded, cache.statistics().local_entries, len(store(cache)))


async def test_a_refresh_replaces_the_value_held_in_memory(clock: FakeClock) -> None:
    """After a background refresh, hits return the new value, not the one held before it."""
    cache = Cache("memory://", clock=clock, jitter=0.0)
    loads: list[int] = []

    @cache.cached(ttl=10)
    async def slow() -> int:
        if not loads:
            clock.advance(1.0)  # the first load takes a second: XFetch weighs that
        loads.append(len(loads) + 1)
        return loads[-1]

    assert 1 == await slow()  # fresh until t=11
    clock.advance(8.5)  # 0.5 s of freshness left: each hit refreshes with p = 0.61
    assert [1] * 50 == [await slow() for _ in range(50)]
    await cache._engine.settle()
    assert ([1, 2], 2) == (loads, await slow())  # the old value is still fresh, yet gone


def store(cache: Cache) -> MemoryCacheStore:
    """The memory store of `cache`."""
    assert isinstance(cache.store, MemoryCacheStore)
    return cache.store


async def test_an_l1_hit_builds_no_tags(clock: FakeClock) -> None:
    """A fresh L1 hit needs no tags (a write does): only the calls that miss the L1 build them."""
    cache = Cache("memory://", clock=clock)
    tagged: list[int] = []

    def tags(item: int) -> list[str]:
        tagged.append(item)
        return [f"item:{item}"]

    cached = cache.cached(ttl=60, tags=tags)(record)
    for _ in range(10):
        await cached(1)
    await cache.invalidate_tags("item:1")
    await cached(1)
    stats = cache.statistics()
    # The 2 misses and the first hit (from the store, as above) build them; 8 L1 hits do not.
    assert (3, 2, 8) == (len(tagged), stats.misses, stats.local_hits)
