"""Cache on the memory store: read-through, freshness windows, tags, L1, manual API.

Time is a `FakeClock`; jitter and XFetch are off unless a test is about them, so
every expiry is exact.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.cache import Cache, MemoryCacheStore

# The stored entry format, to plant bytes a cache did not write (corrupt or foreign values).
from scalepy.cache._entry import encode_entry
from scalepy.errors import ConfigurationError, SerializationError
from scalepy.serializers import MsgpackSerializer, PickleSerializer
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Mapping


def make_cache(clock: FakeClock, **options: Any) -> Cache:
    """A memory cache on `clock` without jitter or early refresh."""
    return Cache("memory://", clock=clock, jitter=0.0, xfetch_beta=0.0, **options)


async def settle(cache: Cache) -> None:
    """Wait for the cache's background refreshes and writes to finish."""
    await cache._engine.settle()


class Source:
    """A loader that counts its calls and returns `prefix-<call number>`."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def __call__(self, *args: object) -> str:
        """Compute a new value (waiting at the gate if one is set)."""
        self.calls += 1
        number = self.calls
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return f"value-{number}"


async def test_concurrent_callers_share_one_load(clock: FakeClock) -> None:
    """A hundred concurrent calls of one cold key run the function once."""
    cache = make_cache(clock)
    source = Source()
    source.gate = asyncio.Event()
    cached = cache.cached(ttl=60)(source.__call__)
    calls = [asyncio.create_task(cached(1)) for _ in range(100)]
    await asyncio.sleep(0)  # let every task reach the flight
    source.gate.set()
    assert ["value-1"] * 100 == await asyncio.gather(*calls)
    assert (1, 99) == (source.calls, cache.statistics().coalesced)


async def test_values_are_fresh_for_their_ttl(clock: FakeClock) -> None:
    """Within the TTL calls hit; after it the function runs again."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=10)(source.__call__)
    assert "value-1" == await cached("a")
    clock.advance(9.999)
    assert "value-1" == await cached("a")
    assert "value-2" == await cached("b")
    clock.advance(0.001)
    assert "value-3" == await cached("a")
    stats = cache.statistics()
    assert (1, 3, 3) == (stats.hits, stats.misses, stats.loads)


async def test_jitter_shortens_lifetimes(clock: FakeClock) -> None:
    """Each fresh lifetime is the TTL shortened by at most the jitter fraction."""
    cache = Cache("memory://", clock=clock, jitter=0.5, xfetch_beta=0.0)
    for key in range(20):
        await cache.get_or_load(f"k{key}", Source(), ttl=100)
    lifetimes = [(await cache.store.get(f"k{key}") or (b"", 0.0))[1] for key in range(20)]
    assert all(50 <= lifetime <= 100 for lifetime in lifetimes)
    assert len(set(lifetimes)) > 1


async def test_stale_values_are_served_while_one_caller_refreshes(clock: FakeClock) -> None:
    """Within stale_ttl the old value answers at once and a background load replaces it."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=10, stale_ttl=5)(source.__call__)
    await cached()
    clock.advance(12)
    source.gate = asyncio.Event()
    assert ["value-1", "value-1"] == [await cached(), await cached()]
    source.gate.set()
    await settle(cache)
    assert ("value-2", 2, 2) == (await cached(), source.calls, cache.statistics().stale)
    clock.advance(16)  # past freshness and the stale window: a plain miss
    assert "value-3" == await cached()


async def test_stale_values_are_served_when_loading_fails(clock: FakeClock) -> None:
    """Within stale_if_error a failing load gives the old value; beyond it, the error."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=10, stale_if_error=30)(source.__call__)
    await cached()
    clock.advance(20)
    source.error = ConnectionError("database down")
    assert "value-1" == await cached()
    clock.advance(20)
    with pytest.raises(ConnectionError):
        await cached()
    source.error = None
    assert "value-4" == await cached()


async def test_background_refresh_failures_keep_the_stale_value(clock: FakeClock) -> None:
    """A refresh that raises is counted; the stale value keeps serving."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=10, stale_ttl=50)(source.__call__)
    await cached()
    clock.advance(11)
    source.error = RuntimeError("boom")
    assert "value-1" == await cached()
    await settle(cache)
    assert ("value-1", 1) == (await cached(), cache.statistics().load_errors)


async def test_errors_reach_every_caller_and_are_not_cached(clock: FakeClock) -> None:
    """The function's exception goes to all concurrent callers; the next call retries."""
    cache = make_cache(clock)
    source = Source()
    source.gate, source.error = asyncio.Event(), ValueError("bad")
    cached = cache.cached(ttl=10)(source.__call__)
    calls = [asyncio.create_task(cached()) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [ValueError] * 3 == [type(result) for result in results]
    source.error = None
    assert "value-2" == await cached()


async def test_a_cancelled_leader_hands_the_load_to_a_follower(clock: FakeClock) -> None:
    """Cancelling the caller that started a load does not cancel the others."""
    cache = make_cache(clock)
    source = Source()
    source.gate = asyncio.Event()
    cached = cache.cached(ttl=10)(source.__call__)
    leader = asyncio.create_task(cached())
    follower = asyncio.create_task(cached())
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    source.gate.set()
    assert "value-2" == await follower
    assert leader.cancelled()


async def test_none_is_cached_and_told_apart_from_a_miss(clock: FakeClock) -> None:
    """A None result is cached (as None, not a miss), for negative_ttl when given."""
    cache = make_cache(clock)
    calls = 0

    async def find(user_id: int) -> str | None:
        nonlocal calls
        calls += 1
        return None

    lookup = cache.cached(ttl=60, negative_ttl=5)(find)
    assert [None, None] == [await lookup(1), await lookup(1)]
    missing = object()
    assert (1, None) == (calls, await cache.get(lookup.key(1), missing))
    assert missing is await cache.get("never-set", missing)
    clock.advance(5)
    await lookup(1)
    assert 2 == calls
    never = cache.cached(ttl=60, negative_ttl=0)(find)
    await never(2)
    await never(2)
    assert 4 == calls


async def test_a_condition_decides_what_is_cached(clock: FakeClock) -> None:
    """Results failing `condition` are returned but not stored."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=60, condition=lambda value: value != "value-1")(source.__call__)
    assert ["value-1", "value-2", "value-2"] == [await cached(), await cached(), await cached()]


async def test_tags_invalidate_every_tagged_entry(clock: FakeClock) -> None:
    """One tag invalidation drops every entry carrying it, and only those."""
    cache = make_cache(clock)
    todo, listing, other = Source(), Source(), Source()

    @cache.cached(ttl=60, tags=["todo:{todo_id}", "todos"])
    async def get_todo(todo_id: int) -> str:
        return await todo(todo_id)

    @cache.cached(ttl=60, tags=lambda: ["todos"])
    async def list_todos() -> str:
        return await listing()

    @cache.cached(ttl=60, tags=("users",))
    async def get_user() -> str:
        return await other()

    for value in (get_todo(1), get_todo(2), list_todos(), get_user()):
        await value
    await cache.invalidate_tags("todo:1")
    assert ["value-3", "value-2", "value-1", "value-1"] == [
        await get_todo(1),
        await get_todo(2),
        await list_todos(),
        await get_user(),
    ]
    await cache.invalidate_tags("todos", "unknown")
    assert ["value-4", "value-2"] == [await get_todo(2), await list_todos()]


async def test_a_load_racing_a_tag_invalidation_is_never_served(clock: FakeClock) -> None:
    """A value computed from data changed during the load is stored stale, and not served."""
    cache = make_cache(clock)
    version = 1

    async def load(todo_id: int) -> int:
        nonlocal version
        seen = version
        if seen == 1:  # a writer commits and invalidates while this load runs
            version = 2
            await cache.invalidate_tags(f"todo:{todo_id}")
        return seen

    get = cache.cached(ttl=60, tags=["todo:{todo_id}"])(load)
    assert (1, 2, 2) == (await get(1), await get(1), await get(1))


async def test_invalidating_one_call_while_it_loads_keeps_the_old_value_out(
    clock: FakeClock,
) -> None:
    """An invalidation during a load of the same key stops that load from storing."""
    cache = make_cache(clock)
    source = Source()
    source.gate = asyncio.Event()
    cached = cache.cached(ttl=60)(source.__call__)
    loading = asyncio.create_task(cached(1))
    await asyncio.sleep(0)
    await cached.invalidate(1)
    source.gate.set()
    assert "value-1" == await loading
    assert "value-2" == await cached(1)


async def test_callers_after_an_invalidation_do_not_join_the_old_load(clock: FakeClock) -> None:
    """A call made after an invalidation starts its own load; only that one is stored."""
    cache = make_cache(clock)
    source = Source()
    source.gate = asyncio.Event()
    cached = cache.cached(ttl=60)(source.__call__)
    old = asyncio.create_task(cached(1))
    await asyncio.sleep(0)
    await cached.invalidate(1)
    new = asyncio.create_task(cached(1))
    await asyncio.sleep(0)
    source.gate.set()
    assert ("value-1", "value-2") == (await old, await new)
    assert "value-2" == await cached(1)


async def test_invalidate_drops_exactly_one_call(clock: FakeClock) -> None:
    """`.invalidate(args)` uses the same key building as the call."""
    cache = make_cache(clock)
    source = Source()
    cached = cache.cached(ttl=60)(source.__call__)
    await cached(1)
    await cached(2)
    await cached.invalidate(1)
    assert ["value-3", "value-2"] == [await cached(1), await cached(2)]


async def test_manual_get_set_delete(clock: FakeClock) -> None:
    """Manual set stores for exactly ttl (no jitter); get returns fresh values only."""
    cache = Cache("memory://", clock=clock, jitter=0.5)
    await cache.set("a", {"n": 1}, ttl=10, stale_ttl=5)
    await cache.set("b", None)
    assert ({"n": 1}, None) == (await cache.get("a"), await cache.get("b", "default"))
    clock.advance(10)
    assert "gone" == await cache.get("a", "gone")  # stale is not fresh
    await cache.delete("b", "a")
    await cache.delete()
    assert "gone" == await cache.get("b", "gone")


async def test_manual_set_with_tags_and_clear(clock: FakeClock) -> None:
    """Entries set by hand carry tags too; clear drops everything."""
    cache = make_cache(clock)
    await cache.set("a", 1, tags=["t"])
    await cache.set("b", 2)
    await cache.invalidate_tags("t")
    assert (None, 2) == (await cache.get("a"), await cache.get("b"))
    await cache.invalidate_tags()
    await cache.clear()
    assert await cache.get("b") is None


async def test_get_or_load_is_the_decorator_without_a_function(clock: FakeClock) -> None:
    """get_or_load loads once per key and honours the same options."""
    cache = make_cache(clock, ttl=30)
    source = Source()
    values = [await cache.get_or_load("k", source, tags=["t"]) for _ in range(3)]
    assert (["value-1"] * 3, 1) == (values, source.calls)
    clock.advance(30)
    assert "value-2" == await cache.get_or_load("k", source)


async def test_values_come_back_as_the_function_returns_them(clock: FakeClock) -> None:
    """Hits return the annotated type (tuples stay tuples); untyped ones what JSON decodes."""
    cache = make_cache(clock, local_max_size=10)
    packed = make_cache(clock, serializer=MsgpackSerializer())

    async def pair() -> tuple[int, bytes]:
        return (1, b"x")

    async def numbers() -> tuple[int, int]:
        return (1, 2)

    async def untyped() -> Any:
        return (1, 2)

    as_json = cache.cached(ttl=60)(numbers)
    assert [(1, 2), (1, 2)] == [await as_json(), await as_json()]
    as_msgpack = packed.cached(ttl=60)(pair)
    assert [(1, b"x"), (1, b"x")] == [await as_msgpack(), await as_msgpack()]
    plain = cache.cached(ttl=60)(untyped)
    assert [(1, 2), [1, 2]] == [await plain(), await plain()]


async def test_values_the_serializer_cannot_encode_are_returned_uncached(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A loaded value that cannot be stored is returned, not cached, logged once; `set` raises."""
    cache = make_cache(clock)

    async def numbers() -> set[object]:
        return {object()}

    cached = cache.cached(ttl=60)(numbers)
    with caplog.at_level(logging.WARNING, "scalepy.cache"):
        first, second = await cached(), await cached()
        assert 2 == len({id(first), id(second)})  # computed twice: not cached
        assert {1, 2} == await cache.get_or_load("k", lambda: asyncio.sleep(0, {1, 2}))
    assert 2 == len([r for r in caplog.records if "cannot be serialized" in r.getMessage()])
    with pytest.raises(SerializationError):
        await cache.set("k", object())


async def test_undecodable_entries_are_counted_misses(clock: FakeClock) -> None:
    """Foreign bytes or a payload the serializer rejects are misses, never exceptions."""
    metrics = RecordingInstrumentation()
    store = MemoryCacheStore(clock=clock)
    cache = Cache(store, clock=clock, instrumentation=metrics)
    await store.set("foreign", b"\x07garbage", 60)
    bad_json = encode_entry(b"{not json", is_none=False, stale_window=0, load_time=0)
    await store.set("bad", bad_json, 60)
    assert ("fresh", "fresh") == (
        await cache.get_or_load("foreign", lambda: asyncio.sleep(0, "fresh")),
        await cache.get_or_load("bad", lambda: asyncio.sleep(0, "fresh")),
    )
    assert 2 == metrics.value("scalepy.cache.entries.undecodable")


async def test_pickles_signed_without_their_key_are_counted_misses(clock: FakeClock) -> None:
    """Entries signed before keys were bound (no context), or for another key, are misses."""
    metrics = RecordingInstrumentation()
    store = MemoryCacheStore(clock=clock)
    serializer = PickleSerializer(b"k" * 32)
    cache = Cache(store, clock=clock, serializer=serializer, instrumentation=metrics)
    unbound = encode_entry(serializer.dumps("admin"), is_none=False, stale_window=0, load_time=0)
    await store.set("role:old", unbound, 60)
    await cache.set("role:bob", "admin")
    stored = await store.get("role:bob")
    assert stored is not None
    await store.set("role:mallory", stored[0], 60)
    assert (None, None, "admin") == (
        await cache.get("role:old"),
        await cache.get("role:mallory"),
        await cache.get("role:bob"),
    )
    assert 2 == metrics.value("scalepy.cache.entries.undecodable")


async def test_templated_keys_whose_fields_spell_alike_keep_their_own_entries(
    clock: FakeClock,
) -> None:
    """item('1:2', '3') and item('1', '2:3') are two entries, and invalidate separately."""
    cache = make_cache(clock)

    @cache.cached(ttl=60, key="item:{a}:{b}")
    async def item(a: str, b: str) -> str:
        return f"{a}|{b}"

    assert ("1:2|3", "1|2:3") == (await item("1:2", "3"), await item("1", "2:3"))
    assert ("1:2|3", "1|2:3") == (await item("1:2", "3"), await item("1", "2:3"))
    assert "1|2" == await item("1", "2")
    assert "1|2" == await cache.get("item:1:2")  # simple values keep their readable key
    await item.invalidate("1:2", "3")
    assert (None, "1|2:3") == (
        await cache.get(item.key("1:2", "3")),
        await cache.get(item.key("1", "2:3")),
    )


async def test_methods_share_entries_across_instances(clock: FakeClock) -> None:
    """The instance is not part of the key; invalidate works on the bound method."""
    cache = make_cache(clock)
    source = Source()

    class Repository:
        @cache.cached(ttl=60)
        async def load(self, item: int) -> str:
            return await source(item)

    first, second = Repository(), Repository()
    assert ["value-1", "value-1"] == [await first.load(1), await second.load(1)]
    await second.load.invalidate(1)
    assert "value-2" == await first.load(item=1)
    assert first.load.key(1) == Repository.load.key(second, 1)
    assert Repository.load is Repository.__dict__["load"]


async def test_the_decorated_function_keeps_its_identity(clock: FakeClock) -> None:
    """Name, docstring and the wrapped function are kept; bare @cached uses the cache's ttl."""
    cache = make_cache(clock, ttl=7)

    @cache.cached
    async def documented(x: int) -> int:
        """Say something."""
        return x

    assert ("documented", "Say something.") == (documented.__name__, documented.__doc__)
    assert 3 == await documented(3)
    assert 7 == (await cache.store.get(documented.key(3)) or (b"", 0.0))[1]
    assert "documented" in repr(documented)


async def test_custom_keys_are_shared_with_the_manual_api(clock: FakeClock) -> None:
    """A templated key is what get/set/delete see."""
    cache = make_cache(clock)

    @cache.cached(ttl=60, key="user:{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    await get_user(7)
    assert {"id": 7} == await cache.get("user:7")
    await cache.set("user:7", {"id": -1})
    assert {"id": -1} == await get_user(7)


async def test_misuse_is_a_configuration_error(clock: FakeClock) -> None:
    """Sync functions, bad options, tags and keys are rejected with a clear error."""
    cache = make_cache(clock)

    def sync() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="async functions"):
        cache.cached(sync)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="exceeds max_ttl"):
        cache.cached(ttl=90_000)
    with pytest.raises(ConfigurationError, match="collection of strings"):
        cache.cached(tags="todos")(Source().__call__)
    with pytest.raises(ConfigurationError, match="names missing"):
        cache.cached(tags=["{missing}"])(Source().__call__)
    with pytest.raises(ConfigurationError, match="non-empty string"):
        await cache.get("")
    with pytest.raises(ConfigurationError, match="non-empty string"):
        await cache.invalidate_tags("")
    with pytest.raises(ConfigurationError, match="UTF-8"):
        await cache.invalidate_tags("\ud800")
    with pytest.raises(ConfigurationError, match="1024 bytes"):
        await cache.invalidate_tags("t" * 1025)
    cached = cache.cached(ttl=60)(Source().__call__)
    with pytest.raises(ConfigurationError, match="give the cached function key="):
        await cached(object())


@pytest.mark.parametrize(
    "options",
    [
        {"namespace": "a{b}"},
        {"namespace": ""},
        {"local_max_size": -1},
        {"local_max_bytes": 0},
        {"timeout": 0},
        {"max_ttl": 50 * 86_400},
        {"ttl": 0},
        {"jitter": 1.5},
        {"max_value_bytes": 0},
        {"max_value_bytes": True},
        {"max_value_bytes": 1.5},
        {"max_value_bytes": 512 * 2**20 + 1},
    ],
)
def test_invalid_cache_options_are_rejected(options: dict[str, Any]) -> None:
    """Each out-of-range option raises ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        Cache("memory://", **options)


async def test_the_l1_answers_repeat_hits_for_at_most_local_ttl(clock: FakeClock) -> None:
    """With an L1, hits skip the store; after local_ttl they go back to it.

    The store is in this process, so a value enters the L1 on its first read from
    the store, not when it is computed or set.
    """
    cache = make_cache(clock, local_max_size=100, local_ttl=5)
    source = Source()
    cached = cache.cached(ttl=60)(source.__call__)
    for _ in range(3):
        await cached()
    clock.advance(5)
    await cached()
    await cached()
    stats = cache.statistics()
    assert (4, 2, 1) == (stats.hits, stats.local_hits, stats.local_entries)
    assert stats.local_coherent
    await cache.set("other", "x")
    assert ["x", "x"] == [await cache.get("other"), await cache.get("other")]
    assert 3 == cache.statistics().local_hits


async def test_the_l1_is_coherent_with_this_process_writes(clock: FakeClock) -> None:
    """set, delete, invalidate_tags and clear update the process's own L1 at once."""
    cache = make_cache(clock, local_max_size=100)
    source = Source()
    cached = cache.cached(ttl=60, key="k", tags=["t"])(source.__call__)
    await cached()
    await cache.set("k", "manual")
    assert "manual" == await cached()
    await cache.delete("k")
    assert "value-2" == await cached()
    await cache.invalidate_tags("t")
    assert "value-3" == await cached()
    await cache.clear()
    assert "value-4" == await cached()


async def test_xfetch_refreshes_a_hot_key_before_it_expires(clock: FakeClock) -> None:
    """Near expiry, hits of a slow value start one background refresh; nobody misses."""
    for local_max_size in (0, 100):
        cache = Cache("memory://", clock=clock, jitter=0.0, local_max_size=local_max_size)
        loads = 0

        async def slow() -> int:
            nonlocal loads
            loads += 1
            clock.advance(1.0)  # the load takes a second
            return loads

        cached = cache.cached(ttl=10)(slow)
        assert 1 == await cached()  # stored at t=1 (after the load), fresh until t=11
        clock.advance(9.0)  # 1 s of freshness left, as long as a load takes
        values = [await cached() for _ in range(50)]  # P(no refresh) = (1 - 1/e) ** 50 < 1e-9
        await settle(cache)
        assert (2, [1] * 50) == (loads, values)
        assert 2 == await cached()
        assert 1 == cache.statistics().misses


async def test_cached_many_loads_only_the_misses(clock: FakeClock) -> None:
    """A bulk call loads the ids not cached, in one call; left-out ids are None."""
    cache = make_cache(clock)
    requested: list[list[int]] = []

    @cache.cached_many(ttl=60, tags=lambda user_id: [f"user:{user_id}"])
    async def load_users(user_ids: list[int], *, suffix: str = "") -> Mapping[int, str]:
        requested.append(user_ids)
        return {user_id: f"user-{user_id}{suffix}" for user_id in user_ids if user_id != 4}

    assert {1: "user-1", 2: "user-2"} == await load_users([1, 2])
    assert {2: "user-2", 3: "user-3", 4: None} == await load_users([2, 3, 4])
    assert {4: None, 1: "user-1"} == await load_users([4, 1])
    assert {1: "user-1!"} == await load_users([1], suffix="!")
    await load_users.invalidate([1])
    await cache.invalidate_tags("user:2")
    assert {1: "user-1", 2: "user-2"} == await load_users([1, 2])
    assert [[1, 2], [3, 4], [1], [1, 2]] == requested
    assert load_users.key(1) != load_users.key(1, suffix="!")
    assert "load_users" in repr(load_users)


async def test_cached_many_shares_loads_with_concurrent_calls(clock: FakeClock) -> None:
    """Items another call is loading are waited for, not loaded again."""
    cache = make_cache(clock, local_max_size=10)
    gate = asyncio.Event()
    requested: list[list[int]] = []

    @cache.cached_many(ttl=60, key=lambda item: f"item:{item}")
    async def load(items: list[int]) -> Mapping[int, int]:
        requested.append(items)
        await gate.wait()
        return {item: item * 10 for item in items}

    first = asyncio.create_task(load([1, 2]))
    await asyncio.sleep(0)
    second = asyncio.create_task(load([2, 3]))
    await asyncio.sleep(0)
    gate.set()
    assert ({1: 10, 2: 20}, {2: 20, 3: 30}) == (await first, await second)
    assert [[1, 2], [3]] == requested
    assert {1: 10} == await load([1])
    assert 10 == await cache.get("item:1")


async def test_cached_many_serves_stale_items(clock: FakeClock) -> None:
    """Stale items answer while refreshed one by one; a failing load serves stale-if-error."""
    cache = make_cache(clock)
    failing = False
    loads = 0

    @cache.cached_many(ttl=10, stale_ttl=5, stale_if_error=20)
    async def load(items: list[str]) -> Mapping[str, int]:
        nonlocal loads
        loads += 1
        if failing:
            raise RuntimeError("down")
        return dict.fromkeys(items, loads)

    assert {"a": 1, "b": 1} == await load(["a", "b"])
    clock.advance(12)  # 2 s past freshness: stale, refreshed in the background
    assert {"a": 1, "b": 1} == await load(["a", "b"])
    await settle(cache)
    assert {"a": 2, "b": 3} == await load(["a", "b"])  # one refresh per item
    clock.advance(17)  # 7 s past freshness: only stale-if-error is left
    failing = True
    assert {"a": 2, "b": 3} == await load(["a", "b"])
    with pytest.raises(RuntimeError):
        await load(["a", "c"])  # c has no old value to fall back on
    assert 2 == cache.statistics().load_errors


async def test_metrics_describe_every_outcome(clock: FakeClock) -> None:
    """Requests by result and tier, loads, coalescing, invalidations and L1 size are recorded."""
    metrics = RecordingInstrumentation()
    cache = make_cache(clock, local_max_size=10, instrumentation=metrics, namespace="m")
    source = Source()
    source.gate = asyncio.Event()
    cached = cache.cached(ttl=60, tags=["t"])(source.__call__)
    calls = [asyncio.create_task(cached()) for _ in range(3)]
    await asyncio.sleep(0)
    source.gate.set()
    await asyncio.gather(*calls)
    await cached()  # from the store, then kept in the L1
    await cached()
    await cache.invalidate_tags("t")
    await cache.delete("x")
    await cache.clear()
    m = {"scalepy.cache.name": "m"}

    def value(name: str, **labels: str) -> float:  # labels by their last segment, for brevity
        keys = {key.rsplit(".", 1)[-1]: key for key in metrics.metrics[name].labels}
        return metrics.value(name, {**m, **{keys[k]: v for k, v in labels.items()}})

    assert 1 == value("scalepy.cache.requests", result="miss", tier="loader")
    assert 1 == value("scalepy.cache.requests", result="hit", tier="l2")
    assert 1 == value("scalepy.cache.requests", result="hit", tier="l1")
    assert 2 == value("scalepy.cache.requests.coalesced")
    assert 1 == metrics.count("scalepy.cache.load.duration", m)
    assert 1 == value("scalepy.cache.invalidations", kind="tag", origin="local")
    assert 1 == value("scalepy.cache.invalidations", kind="key", origin="local")
    assert 1 == value("scalepy.cache.invalidations", kind="clear", origin="local")
    assert 0 == value("scalepy.cache.local.size")
    assert 1 <= metrics.count("scalepy.cache.local.size", m)


async def test_statistics_and_repr_show_the_state(clock: FakeClock) -> None:
    """statistics() is a snapshot; repr names the store and the guard."""
    async with make_cache(clock, local_max_size=10) as cache:
        await cache.get_or_load("k", Source())
        await cache.get_or_load("k", Source())  # read from the store: now in the L1
        stats = cache.statistics()
        assert (0, 1, 1, 0, True) == (
            stats.in_flight,
            stats.local_entries,
            stats.misses,
            stats.errors,
            stats.backend_available,
        )
        assert "MemoryCacheStore" in repr(cache)
        assert cache.staleness_bound is None


async def test_values_over_max_value_bytes_are_returned_but_not_stored(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Oversized values reach their caller, are never stored, are counted, and logged once.

    One WARNING per function, however many oversized values it returns; `set`
    raises instead, since storing is all it does.
    """
    metrics = RecordingInstrumentation()
    cache = make_cache(clock, max_value_bytes=100, instrumentation=metrics, local_max_size=10)
    loads: list[str] = []

    @cache.cached(ttl=60)
    async def big() -> str:
        loads.append("big")
        return "x" * 200

    @cache.cached(ttl=60)
    async def other() -> str:
        loads.append("other")
        return "y" * 200

    with caplog.at_level("WARNING", logger="scalepy.cache"):
        for _ in range(3):
            assert "x" * 200 == await big()
        assert "y" * 200 == await other()
        assert "z" * 200 == await cache.get_or_load("manual", lambda: _value("z" * 200))
    assert ["big", "big", "big", "other"] == loads  # never stored: loaded every time
    assert 5 == cache.statistics().oversized == metrics.value("scalepy.cache.values.oversized")
    assert 0 == cache.statistics().local_entries
    warnings = [record.getMessage() for record in caplog.records]
    assert 3 == len(warnings)  # big, other, get_or_load: once each
    assert ".<locals>.big: a value of 202 bytes serialized" in warnings[0]
    assert "over max_value_bytes (100)" in warnings[0]
    assert ".<locals>.other: a value of 202 bytes serialized" in warnings[1]
    assert warnings[2].startswith("Cache.get_or_load: a value of 202 bytes serialized")
    with pytest.raises(SerializationError, match="over max_value_bytes"):
        await cache.set("manual", "z" * 200)
    assert None is await cache.get("manual")
    await cache.set("manual", "z" * 50)
    assert "z" * 50 == await cache.get("manual")


async def _value(value: object) -> object:
    """Return `value` (a loader for get_or_load)."""
    return value


def test_a_timedelta_ttl_is_refused_with_the_seconds_form() -> None:
    """`ttl=timedelta(...)` raises ConfigurationError saying durations are seconds."""
    from datetime import timedelta

    cache = Cache()
    with pytest.raises(ConfigurationError, match=r"\(seconds: ttl=delta\.total_seconds\(\)\)$"):
        cache.cached(ttl=timedelta(minutes=1))  # type: ignore[call-overload]  # the misuse


def test_an_option_given_by_position_says_options_are_keywords() -> None:
    """`@cache.cached(60)` raises ConfigurationError showing `@cache.cached(ttl=60)`."""
    cache = Cache()
    with pytest.raises(
        ConfigurationError,
        match=r"takes its options by keyword, e\.g\. @cache\.cached\(ttl=60\); got 60$",
    ):
        cache.cached(60)  # type: ignore[call-overload]  # the misuse under test
