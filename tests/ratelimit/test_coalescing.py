"""Concurrent calls on one key share one script run, decided exactly as one by one.

The Redis store coalesces the calls made on a busy key under the same rules in one
event-loop tick into one EVALSHA that decides them in arrival order. Every call
must still get the decisions it would get alone, sent in that order at that
instant: the reference is the memory store deciding the same calls sequentially
on the same integer time.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendError
from scalepy.ratelimit import Outcome, RateLimiter, RedisRateLimitStore, TokenBucket
from tests.ratelimit.test_agreement import POLICIES, stores
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

    from scalepy.ratelimit import PolicyDecision

PORT = 22001  # this suite's private redis-server

Call = tuple[int, bool]
"""(cost, commit)."""
Round = tuple[int, list[int], list[Call]]
"""(time step in us, indexes into POLICIES, the calls made at once)."""

rounds = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 3), st.integers(0, 3_000_000)),
        st.lists(st.integers(0, len(POLICIES) - 1), min_size=1, max_size=3),
        st.lists(
            st.tuples(
                st.one_of(st.just(1), st.integers(0, 12), st.just(10**7)),
                st.booleans() | st.just(True),  # mostly consuming, sometimes only asking
            ),
            min_size=1,
            max_size=12,
        ),
    ),
    min_size=1,
    max_size=8,
)


def server_order(commits: list[bool]) -> list[int]:
    """The calls of one tick, by index, in the order the server decides them.

    Nothing is in flight when the tick starts: per commit flag (a batch holds one
    flag), the first call runs alone and the later ones share one batch, placed
    where its first call came; within a batch, calls keep their order.
    """
    commands: list[list[int]] = []
    batches: dict[bool, list[int]] = {}
    alone: set[bool] = set()
    for index, commit in enumerate(commits):
        if commit not in alone:
            alone.add(commit)
            commands.append([index])
        elif commit in batches:
            batches[commit].append(index)
        else:
            batches[commit] = [index]
            commands.append(batches[commit])
    return [index for command in commands for index in command]


async def compare_rounds(url: str, sequence: list[Round]) -> None:
    """Each round's calls at once on Redis, one by one on memory: the same decisions."""
    async with stores(url) as both:
        for step, indexes, calls in sequence:
            both.clock.advance(step / 1_000_000)
            policies = [POLICIES[index] for index in indexes]
            actual = await asyncio.gather(
                *(both.redis.acquire(both.key, policies, c, commit=m) for c, m in calls)
            )
            order = server_order([commit for _, commit in calls])
            expected: dict[int, tuple[PolicyDecision, ...]] = {}
            for i in order:
                cost, commit = calls[i]
                expected[i] = await both.memory.acquire(both.key, policies, cost, commit=commit)
            assert [expected[i] for i in range(len(calls))] == actual


@settings(max_examples=100, deadline=None)
@given(sequence=rounds)
def test_a_batch_decides_as_its_calls_one_by_one_on_redis(
    redis_url: str, sequence: list[Round]
) -> None:
    """Standalone Redis: concurrent calls get what sequential calls would, call for call."""
    asyncio.run(compare_rounds(redis_url, sequence))


@settings(max_examples=25, deadline=None)
@given(sequence=rounds)
def test_a_batch_decides_as_its_calls_one_by_one_on_the_cluster(
    cluster_url: str, sequence: list[Round]
) -> None:
    """Redis Cluster: the batch's keys share the call key's hash tag, hence one slot."""
    asyncio.run(compare_rounds(cluster_url, sequence))


async def test_concurrent_calls_on_a_busy_key_share_one_command(
    redis: RedisClient, key_prefix: str
) -> None:
    """Fifty calls in one tick: the first alone, 49 in one EVALSHA; fifty keys: fifty."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    bucket = TokenBucket(capacity=30, refill_rate=0.001)
    sent = redis.statistics().pipeline.commands
    one_key = await asyncio.gather(*(store.acquire("k", [bucket], 1) for _ in range(50)))
    assert 2 == redis.statistics().pipeline.commands - sent
    assert [True] * 30 + [False] * 20 == [d.allowed for (d,) in one_key]
    assert list(range(29, -1, -1)) + [0] * 20 == [d.remaining for (d,) in one_key]
    sent = redis.statistics().pipeline.commands
    many = await asyncio.gather(*(store.acquire(f"k{i}", [bucket], 1) for i in range(50)))
    assert 50 == redis.statistics().pipeline.commands - sent
    assert all(d.allowed and d.remaining == 29 for (d,) in many)


def fields(decisions: tuple[PolicyDecision, ...]) -> list[tuple[bool, int]]:
    """(allowed, remaining) of each decision."""
    return [(d.allowed, d.remaining) for d in decisions]


async def test_a_call_cancelled_before_the_batch_is_sent_is_left_out(
    redis: RedisClient, key_prefix: str
) -> None:
    """The other calls of the batch are decided, and the cancelled one consumes nothing."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    bucket = TokenBucket(capacity=3, refill_rate=0.001)
    first, second, third = (asyncio.create_task(store.acquire("k", [bucket], 1)) for _ in range(3))
    # Runs after the three calls have joined their batch, before it is sent.
    asyncio.get_running_loop().call_soon(second.cancel)
    (one,), (three,) = await asyncio.gather(first, third)
    assert second.cancelled()
    assert (True, 2) == (one.allowed, one.remaining)
    assert (True, 1) == (three.allowed, three.remaining)
    (last,) = fields(await store.acquire("k", [bucket], 1))
    assert (True, 0) == last  # the cancelled call took nothing


async def test_a_call_cancelled_after_its_batch_closed_leaves_the_others_answered(
    redis: RedisClient, key_prefix: str
) -> None:
    """Cancelled once its batch is on its way, a call's cost is spent; the others are answered."""
    store = RedisRateLimitStore(redis, namespace=key_prefix)
    bucket = TokenBucket(capacity=3, refill_rate=0.001)
    loop = asyncio.get_running_loop()
    calls = [asyncio.create_task(store.acquire("k", [bucket], 1)) for _ in range(3)]
    # asyncio runs callbacks in the order they were scheduled: this one schedules the
    # cancellation after the calls have joined, then the batch is closed and sent
    # (scheduled by the first call), then the cancellation runs.
    loop.call_soon(lambda: loop.call_soon(calls[1].cancel))
    (one,), (three,) = await asyncio.gather(calls[0], calls[2])
    assert calls[1].cancelled()
    assert [(True, 2), (True, 0)] == fields((one, three))


async def test_a_failed_batch_fails_every_call_with_the_backend_error(tmp_path: Path) -> None:
    """Redis stopped: each call of the batch raises, none is left waiting."""
    bucket = TokenBucket(capacity=3, refill_rate=0.001)
    with RedisServer(tmp_path, port=PORT) as server:
        async with RedisClient.from_url(server.url) as client:
            store = RedisRateLimitStore(client.with_timeout(0.2))
            await client.ping()
            server.stop()
            results = await asyncio.gather(
                *(store.acquire("k", [bucket], 1) for _ in range(4)), return_exceptions=True
            )
    assert all(isinstance(result, BackendError) for result in results)


@pytest.mark.parametrize(
    ("on_failure", "outcomes", "allowed"),
    [
        ("fail_open", [Outcome.FAIL_OPEN] * 5, [True] * 5),
        ("fail_closed", [Outcome.FAIL_CLOSED] * 5, [False] * 5),
        ("local", [Outcome.LOCAL] * 5, [True, True, True, False, False]),
    ],
)
async def test_the_failure_policy_applies_to_each_call_of_a_failed_batch(
    tmp_path: Path, on_failure: str, outcomes: list[Outcome], allowed: list[bool]
) -> None:
    """Five concurrent calls, Redis stopped: each decided by the failure policy, in order."""
    bucket = TokenBucket(capacity=3, refill_rate=0.001)
    with RedisServer(tmp_path, port=PORT) as server:
        async with RateLimiter(
            server.url,
            timeout=0.2,
            on_failure=on_failure,  # type: ignore[arg-type]
        ) as limiter:
            await limiter.ping()
            server.stop()
            decisions = await asyncio.gather(*(limiter.acquire("k", bucket) for _ in range(5)))
    assert outcomes == [d.outcome for d in decisions]
    assert allowed == [d.allowed for d in decisions]


async def test_without_coalescing_each_call_is_its_own_command(
    redis: RedisClient, key_prefix: str
) -> None:
    """`coalesce=False`: one EVALSHA per call, the same decisions."""
    store = RedisRateLimitStore(redis, namespace=key_prefix, coalesce=False)
    bucket = TokenBucket(capacity=3, refill_rate=0.001)
    sent = redis.statistics().pipeline.commands
    decisions = await asyncio.gather(*(store.acquire("k", [bucket], 1) for _ in range(4)))
    assert 4 == redis.statistics().pipeline.commands - sent
    assert [(True, 2), (True, 1), (True, 0), (False, 0)] == [
        (d.allowed, d.remaining) for (d,) in decisions
    ]
