"""The Lua script agrees with the Python reference, decision for decision.

Random sequences of (time step, cost, policies) run through the memory store on a
fake clock and through the Redis store given the same integer time; every
decision must match exactly. The Redis keys expire in real time while the fake
clock jumps, so every policy's interval is long (>= 0.47 s) next to the few
milliseconds an example takes: no key expires in Redis while it still matters
(a fixed window's key lives one whole window, wherever in it the request fell).
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.errors import ConfigurationError
from scalepy.ratelimit import (
    GCRA,
    FixedWindow,
    MemoryRateLimitStore,
    Policy,
    RedisRateLimitStore,
    SlidingWindow,
    TokenBucket,
)
from scalepy.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable

    from scalepy.ratelimit import PolicyDecision

POLICIES: tuple[Policy, ...] = (
    TokenBucket(capacity=3, refill_rate=1.0),
    GCRA(limit=7, period=3.3, burst=2),  # an interval of 471_429 us
    SlidingWindow(limit=4, window=2.0),
    SlidingWindow(limit=10, window=3.7),
    TokenBucket(capacity=1_000_000, refill_rate=0.001),  # near the exactness bound
    SlidingWindow(limit=1_000_000, window=1000.0),  # likewise
    FixedWindow(limit=3, window=0.5),
    FixedWindow(limit=8, window=2.9),
    FixedWindow(limit=2**40, window=10**9),  # likewise
)

Step = tuple[int, int, list[int], bool]
"""(time step in us, cost, indexes into POLICIES (repeats allowed), commit)."""

steps = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 3), st.integers(0, 3_000_000)),
        st.one_of(st.just(1), st.integers(0, 12), st.just(10**7)),
        st.lists(st.integers(0, len(POLICIES) - 1), min_size=1, max_size=3),
        st.booleans() | st.just(True),  # mostly consuming, sometimes only asking
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Stores:
    """Both stores on one fake clock, the Redis one given its time, and a fresh key."""

    clock: FakeClock
    memory: MemoryRateLimitStore
    redis: RedisRateLimitStore
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


@asynccontextmanager
async def stores(url: str) -> AsyncIterator[Stores]:
    """Both stores on the Redis at `url`; the key's Redis state is deleted afterwards."""
    clock = FakeClock(1_700_000_000.0)
    async with RedisClient.from_url(url) as client:
        redis = RedisRateLimitStore(
            client, namespace="agreement", now_us=lambda: int(clock.now() * 1_000_000)
        )
        both = Stores(clock, MemoryRateLimitStore(clock=clock), redis)
        try:
            yield both
        finally:  # a failing example too: its keys would outlive the run
            await redis.reset(both.key, POLICIES)


async def compare(url: str, sequence: list[Step]) -> None:
    """Run `sequence` on both stores and assert identical decisions at every step."""
    async with stores(url) as both:
        for step, cost, indexes, commit in sequence:
            both.clock.advance(step / 1_000_000)
            policies = [POLICIES[index] for index in indexes]
            expected = await both.memory.acquire(both.key, policies, cost, commit=commit)
            actual = await both.redis.acquire(both.key, policies, cost, commit=commit)
            assert expected == actual


@settings(max_examples=100, deadline=None)
@given(sequence=steps)
def test_lua_agrees_with_python_on_redis(redis_url: str, sequence: list[Step]) -> None:
    """Standalone Redis: same allowed, remaining, retry_after and reset_after at every step."""
    asyncio.run(compare(redis_url, sequence))


@settings(max_examples=25, deadline=None)
@given(sequence=steps)
def test_lua_agrees_with_python_on_the_cluster(cluster_url: str, sequence: list[Step]) -> None:
    """Redis Cluster: the same agreement, with each key's slot on its own node."""
    asyncio.run(compare(cluster_url, sequence))


costs = st.lists(
    st.one_of(
        st.integers(-2, 4),
        st.integers(0, 4).map(float),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


async def verdict(call: Awaitable[tuple[PolicyDecision, ...]]) -> object:
    """The decisions of `call`, or the message of the ConfigurationError it raised."""
    try:
        return await call
    except ConfigurationError as exc:
        return str(exc)


async def compare_costs(url: str, sequence: list[Any]) -> None:
    """One request per cost (of any type, on purpose) on both stores: same refusal or decisions."""
    policies = [POLICIES[0], POLICIES[2]]
    async with stores(url) as both:
        for cost in sequence:
            both.clock.advance(0.1)
            expected = await verdict(both.memory.acquire(both.key, policies, cost))
            actual = await verdict(both.redis.acquire(both.key, policies, cost))
            assert expected == actual


@settings(max_examples=60, deadline=None)
@given(sequence=costs)
def test_stores_agree_on_which_costs_they_accept(redis_url: str, sequence: list[Any]) -> None:
    """NaN, fractions and bools are refused by both stores alike; whole floats count as ints."""
    asyncio.run(compare_costs(redis_url, sequence))
