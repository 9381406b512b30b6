"""The memory and Redis stores agree with a reference model on random operation sequences.

Time steps are whole seconds. The memory store runs on a fake clock; Redis has
no clock to fake, so a time step is applied to Redis by shortening the TTL of
every key the sequence may have touched (or deleting it when the step reaches
its end). Redis keeps running down in real time too, a few milliseconds per
example, so remaining TTLs are compared with a small slack, and every expiry
boundary sits at least a second away from where real time could push it.

On Redis the sequences leave out `clear`, which scans the whole server (slow on
a busy shared one; test_stores.py checks it), and add the load lock: a read
that takes it on a miss (`get_or_lock`, the script a cache uses while lookups
mostly miss) and its release, beside the plain read (PTTL and GET). Every key
written has a TTL of seconds, so examples leave nothing behind.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.cache import MemoryCacheStore, RedisCacheStore
from scalepy.testing import FakeClock
from tests.cache.conftest import warp

if TYPE_CHECKING:
    from scalepy.cache import CacheStore

KEYS = ["a", "b", "c"]
TAGS = ["x", "y"]
SLACK = 0.25
LOCK_TTL = 4

Operation = tuple[Any, ...]

steps = (
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.binary(max_size=8), st.integers(1, 6)),
    st.tuples(st.just("get"), st.sampled_from(KEYS)),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(
        st.just("invalidate"),
        st.lists(st.sampled_from(TAGS), min_size=1, unique=True).map(tuple),
        st.integers(1, 6),
    ),
    st.tuples(st.just("versions")),
    st.tuples(st.just("advance"), st.integers(1, 3)),
)
operations = st.lists(st.one_of(*steps, st.tuples(st.just("clear"))), max_size=30)
lock_steps = (
    st.tuples(st.just("get_or_lock"), st.sampled_from(KEYS)),
    st.tuples(st.just("release"), st.sampled_from(KEYS)),
)
redis_operations = st.lists(st.one_of(*steps, *lock_steps), max_size=30)


@dataclass
class Model:
    """The reference: entries and tag versions with expiries, on a time that only steps."""

    now: int = 0
    entries: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    tags: dict[str, tuple[int, int]] = field(default_factory=dict)
    locks: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per key: (holder, expiry); a holder is the number of the read that took it."""
    reads: int = 0

    def get_or_lock(self, key: str) -> tuple[bytes, int] | int | None:
        """The entry if alive; else the lock's new holder when free, `None` when held."""
        if (entry := self.get(key)) is not None:
            return entry
        holder = self.locks.get(key)
        if holder is not None and holder[1] > self.now:
            return None
        self.reads += 1
        self.locks[key] = (self.reads, self.now + LOCK_TTL)
        return self.reads

    def release(self, key: str, holder: int) -> None:
        """Free the lock if `holder` still has it."""
        if self.locks.get(key, (0, 0))[0] == holder:
            del self.locks[key]

    def get(self, key: str) -> tuple[bytes, int] | None:
        """The entry and its remaining seconds, if alive."""
        entry = self.entries.get(key)
        if entry is None or entry[1] <= self.now:
            return None
        return entry[0], entry[1] - self.now

    def version(self, tag: str) -> int:
        """The tag's version, 0 once forgotten."""
        version, expiry = self.tags.get(tag, (0, 0))
        return version if expiry > self.now else 0

    def invalidate(self, tags: tuple[str, ...], keep: int) -> None:
        """Bump each tag, keeping it at least `keep` seconds."""
        for tag in tags:
            expiry = max(self.now + keep, self.tags.get(tag, (0, 0))[1])
            self.tags[tag] = (self.version(tag) + 1, expiry)


async def run(store: CacheStore, clock: FakeClock, sequence: list[Operation]) -> None:
    """Apply `sequence` to the model and to `store`, comparing every observation."""
    model = Model()
    tokens: dict[str, tuple[int, str]] = {}  # key: (the model's holder, the store's token)
    for operation in sequence:
        match operation:
            case ("set", str(key), bytes(data), int(ttl)):
                model.entries[key] = (data, model.now + ttl)
                await store.set(key, data, float(ttl))
            case ("get", str(key)):
                expected = model.get(key)
                actual = await store.get(key)
                if expected is None:
                    assert actual is None
                else:
                    assert actual is not None
                    assert expected[0] == actual[0]
                    assert expected[1] - SLACK <= actual[1] <= expected[1]
            case ("get_or_lock", str(key)):
                assert isinstance(store, RedisCacheStore)
                expected_read = model.get_or_lock(key)
                read = await store.get_or_lock(key)
                if isinstance(expected_read, int):
                    assert isinstance(read, str)
                    tokens[key] = (expected_read, read)
                elif expected_read is None:
                    assert read is None
                else:
                    assert isinstance(read, tuple)
                    assert expected_read[0] == read[0]
                    assert expected_read[1] - SLACK <= read[1] <= expected_read[1]
            case ("release", str(key)):
                assert isinstance(store, RedisCacheStore)
                if key in tokens:
                    holder, token = tokens.pop(key)
                    model.release(key, holder)
                    await store.release_lock(key, token)
            case ("delete", str(key)):
                model.entries.pop(key, None)
                await store.delete([key])
            case ("invalidate", tuple(tags), int(keep)):
                model.invalidate(tags, keep)
                await store.invalidate_tags(list(tags), float(keep))
            case ("versions",):
                assert tuple(model.version(tag) for tag in TAGS) == await store.tag_versions(TAGS)
            case ("advance", int(step)):
                model.now += step
                await warp(store, clock, step, KEYS, TAGS)
                if isinstance(store, RedisCacheStore):
                    await warp_locks(store, step)
            case ("clear",):
                model.entries.clear()
                model.tags.clear()
                await store.clear()


async def warp_locks(store: RedisCacheStore, step: int) -> None:
    """Shorten every load lock's TTL by `step` seconds, as `warp` does for entries."""
    for key in KEYS:
        name = store.key(key) + ":lock"
        left = await store.client.execute("PTTL", name)
        if left < 0:
            continue
        if left <= step * 1000:
            await store.client.execute("DEL", name)
        else:
            await store.client.execute("PEXPIRE", name, left - step * 1000)


async def agree(url: str | None, sequence: list[Operation]) -> None:
    """Run `sequence` on the memory store, or on a Redis store at `url`."""
    clock = FakeClock()
    if url is None:
        await run(MemoryCacheStore(clock=clock), clock, sequence)
        return
    async with RedisClient.from_url(url) as client:
        await run(
            RedisCacheStore(client, namespace=f"agreement-{uuid.uuid4().hex}", lock_ttl=LOCK_TTL),
            clock,
            sequence,
        )


@settings(max_examples=200, deadline=None)
@given(sequence=operations)
def test_memory_store_agrees_with_the_model(sequence: list[Operation]) -> None:
    """Entries, remaining TTLs and tag versions are what the model says."""
    asyncio.run(agree(None, sequence))


@settings(max_examples=60, deadline=None)
@given(sequence=redis_operations)
def test_redis_store_agrees_with_the_model(redis_url: str, sequence: list[Operation]) -> None:
    """Standalone Redis: the same observations as the model."""
    asyncio.run(agree(redis_url, sequence))


@settings(max_examples=20, deadline=None)
@given(sequence=redis_operations)
def test_cluster_store_agrees_with_the_model(cluster_url: str, sequence: list[Operation]) -> None:
    """Redis Cluster, each key and tag in its own slot: the same observations."""
    asyncio.run(agree(cluster_url, sequence))
