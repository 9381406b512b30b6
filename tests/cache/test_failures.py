"""Failure policy and cross-process coordination, made deterministic with a fake shared store.

`SharedMemoryStore` is the memory store plus what a shared store offers (a load
lock and an invalidation channel), with a switch per operation that makes it
fail like an unreachable Redis. Time is a `FakeClock`, so lock waits, guard
delays and expiries are exact.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends import MemoryConfig
from scalepy.cache import Cache, MemoryCacheStore, SharedCacheStore

# The message type of the public InvalidationChannel protocol, which scalepy does not export.
from scalepy.cache._bus import Invalidation

# The engine's internal miss sentinel, whose repr is pinned below.
from scalepy.cache._engine import MISSING
from scalepy.errors import BackendError, BackendUnavailable
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


class FakeChannel:
    """An invalidation channel the test drives by hand."""

    def __init__(
        self, on_invalidation: Callable[[Invalidation], None], on_reset: Callable[[], None]
    ) -> None:
        self.deliver = on_invalidation
        self.reset = on_reset
        self.healthy = True
        self.staleness_bound = 0.2
        self.published: list[Invalidation] = []
        self.fail = False
        self.started = self.closed = False

    async def start(self) -> None:
        """Pretend to subscribe."""
        self.started = True

    async def publish(self, invalidation: Invalidation) -> None:
        """Record the message, or fail like Redis."""
        if self.fail:
            raise BackendUnavailable("publish failed", backend="fake")
        self.published.append(invalidation)

    async def aclose(self) -> None:
        """Pretend to unsubscribe."""
        self.closed = True


class SharedMemoryStore(MemoryCacheStore):
    """A memory store acting as if other processes shared it; operations can fail."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.failing: set[str] = set()
        self.holder: str | None = None  # "another process" holds every lock
        self.calls: dict[str, int] = {}
        self.channel: FakeChannel | None = None

    def _call(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if operation in self.failing:
            raise BackendUnavailable(f"{operation} failed", backend="fake")

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """Read, unless reads fail."""
        self._call("get")
        return await super().get(key)

    async def set(self, key: str, data: bytes, ttl: float) -> None:
        """Write, unless writes fail."""
        self._call("set")
        await super().set(key, data, ttl)

    async def tag_versions(self, tags: Sequence[str]) -> tuple[int, ...]:
        """Read tag versions, unless they fail."""
        self._call("tag_versions")
        return await super().tag_versions(tags)

    async def acquire_lock(self, key: str) -> str | None:
        """Take the lock unless another holder has it."""
        self._call("acquire_lock")
        return None if self.holder is not None else "token"

    async def release_lock(self, key: str, token: str) -> None:
        """Release the lock."""
        self._call("release_lock")

    def invalidation_channel(
        self, on_invalidation: Callable[[Invalidation], None], on_reset: Callable[[], None]
    ) -> FakeChannel:
        """Hand out the one fake channel."""
        self.channel = FakeChannel(on_invalidation, on_reset)
        return self.channel


@pytest.fixture
def shared(clock: FakeClock) -> SharedMemoryStore:
    """A fake shared store on the test's clock."""
    return SharedMemoryStore(clock)


def make_cache(store: SharedMemoryStore, clock: FakeClock, **options: Any) -> Cache:
    """A cache on `store` without jitter or early refresh."""
    return Cache(store, clock=clock, jitter=0.0, xfetch_beta=0.0, lock_ttl=5.0, **options)


async def loader() -> str:
    """A value."""
    return "loaded"


def test_the_fake_is_a_shared_store(shared: SharedMemoryStore) -> None:
    """The double offers the shared abilities, so the cache locks and publishes."""
    assert isinstance(shared, SharedCacheStore)


async def test_an_unreachable_backend_costs_nothing_once_the_guard_opens(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """Reads fail: the loader answers, and after 3 failures the store is not even asked.

    A probe after the guard's delay finds it back and caching resumes.
    """
    metrics = RecordingInstrumentation()
    cache = make_cache(shared, clock, instrumentation=metrics)
    shared.failing.add("get")
    assert ["loaded"] * 5 == [await cache.get_or_load(f"k{i}", loader) for i in range(5)]
    assert 3 == shared.calls["get"]
    stats = cache.statistics()
    assert (5, False) == (stats.errors, stats.backend_available)
    assert 3 == metrics.value("scalepy.cache.backend.errors", {"scalepy.cache.operation": "read"})
    assert 5 == metrics.value(
        "scalepy.cache.requests", {"scalepy.cache.result": "error", "scalepy.cache.tier": "loader"}
    )
    shared.failing.clear()
    clock.advance(0.5)
    await cache.get_or_load("k", loader)  # the probe: a miss, stored
    assert "loaded" == await cache.get("k")
    assert cache.statistics().backend_available


async def test_failed_writes_and_lock_calls_are_quiet(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """A failing write, lock or unlock is counted; the caller still gets its value."""
    metrics = RecordingInstrumentation()
    cache = make_cache(shared, clock, instrumentation=metrics)
    shared.failing = {"set", "release_lock"}
    assert "loaded" == await cache.get_or_load("a", loader)
    shared.failing = {"acquire_lock"}
    assert "loaded" == await cache.get_or_load("b", loader)
    await cache._engine.settle()
    assert "loaded" == await cache.get("b")  # written without the lock
    for operation in ("write", "unlock", "lock"):
        assert 1 == metrics.value(
            "scalepy.cache.backend.errors", {"scalepy.cache.operation": operation}
        )


async def test_manual_operations_raise_backend_errors(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """What the caller asks for explicitly fails loudly; get still answers with the default."""
    cache = make_cache(shared, clock)
    shared.failing = {"set", "get"}
    with pytest.raises(BackendError):
        await cache.set("k", 1)
    assert "default" == await cache.get("k", "default")


async def test_a_value_that_is_not_stored_frees_the_load_lock_at_once(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """Unserializable, `condition` false or raising: nothing is stored, the lock is freed."""
    cache = make_cache(shared, clock)

    def broken(value: object) -> bool:
        raise KeyError("ok")

    assert {1, 2} == await cache.get_or_load("a", lambda: asyncio.sleep(0, {1, 2}))
    with pytest.raises(KeyError):
        await cache.get_or_load("b", loader, condition=broken)
    assert "loaded" == await cache.get_or_load("c", loader, condition=lambda _: False)
    await cache._engine.settle()
    assert (3, 3) == (shared.calls["acquire_lock"], shared.calls.get("release_lock"))
    assert "set" not in shared.calls


async def test_waiters_read_what_the_lock_holder_stores(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """While another process holds the lock, a miss re-reads with backoff until the value lands."""
    cache = make_cache(shared, clock)
    shared.holder = "other"
    waiting = asyncio.create_task(cache.get_or_load("k", loader))
    await clock.wait_for_sleepers(1)
    clock.advance(0.01)
    await clock.wait_for_sleepers(1)  # it read again, found nothing, backs off again
    await shared.set("k", (await _entry(cache, "k", "from-holder")), 60)
    clock.advance(1.0)
    assert "from-holder" == await waiting
    assert 0 == cache.statistics().loads


async def test_waiters_load_themselves_when_the_holder_never_delivers(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """Waiting never lasts beyond lock_ttl: then the waiter loads (without the lock)."""
    cache = make_cache(shared, clock)
    shared.holder = "crashed"
    waiting = asyncio.create_task(cache.get_or_load("k", loader))
    while True:
        sleeping = asyncio.ensure_future(clock.wait_for_sleepers(1))
        await asyncio.wait([waiting, sleeping], return_when=asyncio.FIRST_COMPLETED)
        if waiting.done():
            sleeping.cancel()
            break
        clock.advance(0.25)
    assert ("loaded", 1) == (await waiting, cache.statistics().loads)
    assert 5.0 <= clock.now() < 5.5


async def test_remote_invalidations_reach_the_l1(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """Messages from other processes drop keys, tagged values or everything; a reset drops all."""
    metrics = RecordingInstrumentation()
    cache = make_cache(shared, clock, local_max_size=10, instrumentation=metrics)
    await cache.open()
    assert shared.channel is not None
    assert shared.channel.started
    channel = shared.channel
    for key in "abc":
        await cache.get_or_load(key, loader, tags=[f"t{key}"])
    await cache._engine.settle()
    await shared.clear()  # from now on only the L1 still has them
    channel.deliver(Invalidation(keys=("a",), origin="other"))
    channel.deliver(Invalidation(tags=("tb",), origin="other"))
    assert [MISSING, MISSING, "loaded"] == [await cache.get(k, MISSING) for k in "abc"]
    channel.deliver(Invalidation(clear=True, origin="other"))
    assert MISSING == await cache.get("c", MISSING)
    await cache.get_or_load("d", loader)
    channel.reset()
    assert 0 == cache.statistics().local_entries
    for kind in ("key", "tag", "clear"):
        remote = {
            "scalepy.cache.invalidation.kind": kind,
            "scalepy.cache.invalidation.origin": "remote",
        }
        assert 1 == metrics.value("scalepy.cache.invalidations", remote)
    assert 0.2 == cache.staleness_bound
    await cache.aclose()
    assert channel.closed


async def test_local_changes_are_published_and_failures_counted(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """Local changes are published to the other processes; a lost message is counted."""
    metrics = RecordingInstrumentation()
    cache = make_cache(shared, clock, instrumentation=metrics)
    assert shared.channel is not None
    channel = shared.channel
    await cache.set("a", 1)
    await cache.delete("a")
    await cache.invalidate_tags("t")
    await cache.clear()
    assert [
        Invalidation(keys=("a",)),
        Invalidation(keys=("a",)),
        Invalidation(tags=("t",)),
        Invalidation(clear=True),
    ] == channel.published
    channel.fail = True
    await cache.delete("b")
    assert 1 == metrics.value(
        "scalepy.cache.backend.errors", {"scalepy.cache.operation": "publish"}
    )


async def test_the_l1_is_bypassed_while_the_channel_is_unhealthy(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """An unhealthy channel means messages may be missed: the L1 is neither read nor filled."""
    cache = make_cache(shared, clock, local_max_size=10)
    assert shared.channel is not None
    await cache.get_or_load("k", loader)
    shared.channel.healthy = False
    await cache.get_or_load("k", loader)
    await cache.get_or_load("other", loader)
    stats = cache.statistics()
    assert (0, 1, False) == (stats.local_hits, stats.local_entries, stats.local_coherent)


async def test_a_background_refresh_that_cannot_reach_the_backend_gives_up(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """A stale value keeps serving when its refresh cannot read tag versions; it is counted."""
    metrics = RecordingInstrumentation()
    cache = make_cache(shared, clock, instrumentation=metrics)
    await cache.get_or_load("k", loader, ttl=10, stale_ttl=10, tags=["t"])
    await cache._engine.settle()
    clock.advance(11)
    assert "loaded" == await cache.get_or_load("k", loader, ttl=10, stale_ttl=10, tags=["t"])
    shared.failing = {"tag_versions"}  # before the refresh task first runs
    await cache._engine.settle()
    assert 1 == metrics.value(
        "scalepy.cache.backend.errors", {"scalepy.cache.operation": "refresh"}
    )


async def test_closing_cancels_running_refreshes(
    shared: SharedMemoryStore, clock: FakeClock
) -> None:
    """aclose() stops background work; nothing is left pending."""
    cache = make_cache(shared, clock)
    gate = asyncio.Event()

    async def blocked() -> str:
        await gate.wait()
        return "never"

    await cache.get_or_load("k", loader, ttl=10, stale_ttl=10)
    await cache._engine.settle()
    clock.advance(11)
    assert "loaded" == await cache.get_or_load("k", blocked, ttl=10, stale_ttl=10)
    await asyncio.sleep(0)  # the refresh task starts and blocks
    await cache.aclose()
    assert not cache._engine._refreshing


async def test_bulk_lookups_fall_back_to_the_loader_and_hand_over(clock: FakeClock) -> None:
    """cached_many loads everything when the backend fails; a cancelled bulk load hands over."""
    store = SharedMemoryStore(clock)
    cache = make_cache(store, clock)
    gate = asyncio.Event()

    @cache.cached_many(ttl=60, key=str)
    async def load(items: list[int]) -> Mapping[int, int]:
        await gate.wait()
        return {item: -item for item in items}

    first = asyncio.create_task(load([1]))
    await asyncio.sleep(0)
    second = asyncio.create_task(load([1, 2]))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert {1: -1, 2: -2} == await second
    store.failing = {"get"}
    assert {3: -3} == await load([3])
    assert 1 == cache.statistics().errors


async def test_config_objects_and_repr(clock: FakeClock) -> None:
    """A parsed MemoryConfig works like its URL (an L1 as large as the store); reprs say so."""
    async with Cache(MemoryConfig(), clock=clock) as cache:
        for _ in range(3):  # a miss, a read from the store, an L1 hit
            assert "loaded" == await cache.get_or_load("k", loader)
        assert 1 == cache.statistics().local_hits
    assert "MISSING" == repr(MISSING)
    assert repr(cache._engine.tier).startswith("<LocalTier <LocalCache entries=1/100000 ")
    assert "<LocalTier None coherent=False>" == repr(
        Cache(MemoryConfig(), local_max_size=0)._engine.tier
    )  # no L1


async def _entry(cache: Cache, key: str, value: object) -> bytes:
    """The stored bytes of `value` under `key`, as another process would have written them."""
    entry = cache._engine.writer.encode(key, value, cache._policies.get(60), (), (), 0.0)
    assert entry is not None
    return entry.data
