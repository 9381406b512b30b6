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
    """A `memory://` cache decodes a value once, when stored; its hits come from the L1."""
    serializer = CountingSerializer()
    cache = Cache("memory://", serializer=serializer, clock=clock)
    cached = cache.cached(ttl=60)(record)
    for _ in range(100):
        assert {"id": 1, "tags": ["home"]} == await cached(1)
    stats = cache.statistics()
    assert (1, 99, 99, 1) == (serializer.decoded, stats.hits, stats.local_hits, stats.misses)
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
