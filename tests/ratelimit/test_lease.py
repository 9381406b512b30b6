"""Leases against the reference model: the bound docs/ratelimit.md states, checked by hypothesis.

Several replicas (limiters with a `Lease`) share one memory store, the shared
quota; the model is one more memory store deciding the same requests one by one,
with no lease. Over every prefix of a run: every token admitted was given by the
shared quota (none is made up); the replicas admit at least the model's count
minus the tokens leased and not spent (held or lapsed), and at most the model's
plus what the replicas can hold at once (a held token spent after the shared
bucket refilled adds to a burst). Then real processes on one Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendError, ConfigurationError
from scalepy.ratelimit import (
    FixedWindow,
    Lease,
    MemoryRateLimitStore,
    Outcome,
    Policy,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)
from scalepy.ratelimit._metrics import DECISION_DURATION
from scalepy.testing import FakeClock, RecordingInstrumentation
from tests.support.processes import run_processes

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

    from scalepy.ratelimit import PolicyDecision

LEASE = Lease(duration=0.05, max_share=0.5)
POLICIES: tuple[Policy, ...] = (
    TokenBucket(capacity=20, refill_rate=100.0),
    TokenBucket(capacity=40, refill_rate=10.0),
    TokenBucket(capacity=6, refill_rate=1000.0),  # refills a batch well within a lease
    SlidingWindow(limit=30, window=0.2),
    FixedWindow(limit=25, window=0.1),
)
Step = tuple[int, int, int]
"""(microseconds to advance, replica index, cost)."""

step = st.tuples(st.integers(0, 4_000), st.integers(0, 2), st.sampled_from([1, 1, 1, 2, 3]))
steps = st.lists(
    step,
    min_size=1,
    max_size=300,
)


def lease_tokens(instrumentation: RecordingInstrumentation, kind: str) -> int:
    """The tokens recorded as leased (`taken`) or `lapsed`."""
    return int(
        sum(
            value
            for name, value, labels in instrumentation.records
            if name == "scalepy.ratelimit.lease.tokens"
            and labels["scalepy.ratelimit.lease"] == kind
        )
    )


def leasing(
    clock: FakeClock, lease: Lease = LEASE, instrumentation: RecordingInstrumentation | None = None
) -> RateLimiter:
    """One replica leasing from a store of its own (given, so the lease is not ignored)."""
    return RateLimiter(
        MemoryRateLimitStore(clock=clock), clock=clock, lease=lease, instrumentation=instrumentation
    )


class CountingStore:
    """The shared quota, counting the tokens it gave."""

    def __init__(self, clock: FakeClock) -> None:
        self.store = MemoryRateLimitStore(clock=clock)
        self.given = 0

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Decide on the memory store, counting what it gave."""
        decisions = await self.store.acquire(key, policies, cost, commit=commit)
        self.given += cost if commit and all(d.allowed for d in decisions) else 0
        return decisions

    async def reset(self, key: str, policies: Sequence[Policy]) -> None:
        """Reset on the memory store."""
        await self.store.reset(key, policies)

    async def aclose(self) -> None:
        """Close the memory store."""
        await self.store.aclose()


async def run(policy: Policy, sequence: Sequence[Step]) -> None:
    """Run `sequence` through 3 leasing replicas and the model, checking every prefix."""
    clock = FakeClock()
    shared, model = CountingStore(clock), MemoryRateLimitStore(clock=clock)
    instrumentation = RecordingInstrumentation()
    replicas = [
        RateLimiter(
            shared, clock=clock, lease=LEASE, remember_denied=0, instrumentation=instrumentation
        )
        for _ in range(3)
    ]
    held_at_most = len(replicas) * int(LEASE.max_share * policy.rule.max_cost)
    admitted = leased = by_model = 0
    for advance, replica, cost in sequence:
        clock.advance(advance / 1e6)
        decision = await replicas[replica].acquire("k", policy, cost=cost)
        admitted += cost * decision.allowed
        leased += cost * (decision.outcome is Outcome.LEASED)
        by_model += cost * (await model.acquire("k", (policy,), cost))[0].allowed
        unspent = lease_tokens(instrumentation, "taken") - leased  # held or lapsed
        # Every admitted request spent a token the shared quota gave: none is made up.
        assert shared.given == admitted + unspent
        assert by_model - unspent <= admitted <= by_model + held_at_most


@settings(max_examples=400, deadline=None)
@given(policy=st.sampled_from(POLICIES), sequence=steps)
def test_leased_replicas_admit_at_least_the_model_minus_unspent_leases(
    policy: Policy, sequence: list[Step]
) -> None:
    """Leases only under-admit, by at most the leased tokens not spent (held or lapsed)."""
    asyncio.run(run(policy, sequence))


class PerPolicyStore(CountingStore):
    """The shared quota, counting the tokens each policy gave."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.given_by: dict[Policy, int] = {}

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Decide on the memory store, counting what each policy gave."""
        decisions = await super().acquire(key, policies, cost, commit=commit)
        if commit and all(d.allowed for d in decisions):
            for policy in policies:
                self.given_by[policy] = self.given_by.get(policy, 0) + cost
        return decisions


async def run_reads_and_writes(sequence: Sequence[tuple[Step, bool]]) -> None:
    """Reads under one policy, writes under it and a second, leased on 3 replicas."""
    requests, writes = TokenBucket(capacity=20, refill_rate=100.0), FixedWindow(limit=6, window=0.1)
    clock = FakeClock()
    shared = PerPolicyStore(clock)
    replicas = [RateLimiter(shared, clock=clock, lease=LEASE, remember_denied=0) for _ in range(3)]
    admitted = {requests: 0, writes: 0}
    for (advance, replica, cost), write in sequence:
        clock.advance(advance / 1e6)
        policies = (requests, writes) if write else (requests,)
        decision = await replicas[replica].acquire("k", *policies, cost=cost)
        for policy in policies:
            admitted[policy] += cost * decision.allowed
            # Each policy admitted only tokens its shared quota gave, whichever set took them.
            assert admitted[policy] <= shared.given_by.get(policy, 0)


@settings(max_examples=200, deadline=None)
@given(sequence=st.lists(st.tuples(step, st.booleans()), min_size=1, max_size=300))
def test_leases_of_reads_and_writes_sharing_a_policy_make_up_no_token(
    sequence: list[tuple[Step, bool]],
) -> None:
    """A key under two policy sets (reads; writes, one policy more) holds a lease per set.

    Each policy admits only tokens its shared quota gave, whichever set took them.
    """
    asyncio.run(run_reads_and_writes(sequence))


async def over_burst() -> tuple[int, int]:
    """A lease taken from a full bucket, spent after the bucket refilled, in a burst."""
    clock = FakeClock()
    shared, model = MemoryRateLimitStore(clock=clock), MemoryRateLimitStore(clock=clock)
    hot, other = (RateLimiter(shared, clock=clock, lease=LEASE) for _ in range(2))
    bucket = TokenBucket(capacity=20, refill_rate=1000.0)  # a lease holds up to 10
    admitted = by_model = 0

    async def request(limiter: RateLimiter) -> None:
        nonlocal admitted, by_model
        admitted += (await limiter.acquire("k", bucket)).allowed
        by_model += (await model.acquire("k", (bucket,), 1))[0].allowed

    await request(hot)
    clock.advance(0.001)
    await request(hot)  # two requests in the first period: hot
    clock.advance(0.049)
    await request(hot)  # takes a batch of 2: spends 1, holds 1
    clock.advance(0.002)  # the shared bucket is full again
    for _ in range(20):
        await request(other)
    await request(hot)  # from the lease
    return admitted, by_model


async def test_a_held_lease_can_add_to_a_burst_by_at_most_what_it_holds() -> None:
    """The documented upper term: a burst may exceed the model's by the tokens held."""
    assert (24, 23) == await over_burst()


async def test_a_hot_key_is_decided_from_its_lease_and_a_cold_one_stays_exact() -> None:
    """After a period of demand the key's batch answers locally; its headers stay plausible."""
    clock = FakeClock()
    instrumentation = RecordingInstrumentation()
    limiter = leasing(clock, Lease(duration=0.05, max_share=0.1), instrumentation)
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)
    outcomes = []
    for _ in range(30):
        clock.advance(0.005)
        outcomes.append((await limiter.acquire("hot", bucket)).outcome)
        assert Outcome.ALLOWED == (await limiter.acquire(f"cold{len(outcomes)}", bucket)).outcome
    assert [Outcome.ALLOWED] * 10 == outcomes[:10]  # the first period: no demand known yet
    assert Outcome.LEASED in outcomes[10:]
    decisions = instrumentation.records
    assert any(
        name == "scalepy.ratelimit.decisions" and labels == {"scalepy.ratelimit.result": "leased"}
        for name, _, labels in decisions
    )
    assert 0 < lease_tokens(instrumentation, "taken") <= 9 * outcomes.count(Outcome.ALLOWED)
    # Only decisions that asked the backend are timed (the cold keys' and the hot key's
    # exact ones): a leased one waits on nothing. `peek` decides nothing: not timed.
    await limiter.peek("hot", bucket)
    timed = [name for name, _, _ in decisions if name == DECISION_DURATION.name]
    assert 30 + outcomes.count(Outcome.ALLOWED) == len(timed)


async def test_a_lease_is_ignored_on_memory_urls() -> None:
    """memory:// decides every request locally already: the same API, no lease."""
    clock = FakeClock()
    async with RateLimiter("memory://", clock=clock, lease=LEASE) as limiter:
        bucket = TokenBucket(capacity=100, refill_rate=1000.0)
        for _ in range(40):
            clock.advance(0.005)
            assert Outcome.ALLOWED == (await limiter.acquire("k", bucket)).outcome


class Failing(CountingStore):
    """A shared store that fails once told to."""

    failing = False

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Fail while `failing`, else decide."""
        if self.failing:
            raise BackendError("down", backend="test")
        return await super().acquire(key, policies, cost, commit=commit)


async def test_a_held_lease_keeps_deciding_while_the_backend_is_down() -> None:
    """Tokens held are spent without the backend; then the failure policy applies."""
    clock = FakeClock()
    store = Failing(clock)
    limiter = RateLimiter(store, clock=clock, lease=LEASE, on_failure="fail_closed")
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)
    outcomes = []
    for step in range(30):
        store.failing = step >= 12
        clock.advance(0.005)
        outcomes.append((await limiter.acquire("k", bucket)).outcome)
    assert Outcome.LEASED in outcomes[12:]
    assert Outcome.FAIL_CLOSED == outcomes[-1]  # the batch lapsed: the failure policy again
    assert {Outcome.LEASED, Outcome.FAIL_CLOSED} == set(outcomes[12:])


async def test_a_reset_drops_this_replicas_lease() -> None:
    """After reset() the next request asks the backend, whose quota is whole again."""
    clock = FakeClock()
    limiter = leasing(clock)
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)
    await demand(limiter, bucket, clock)
    await limiter.acquire("k", bucket)  # takes a batch
    assert Outcome.LEASED == (await limiter.acquire("k", bucket)).outcome
    await limiter.reset("k", bucket)
    decision = await limiter.acquire("k", bucket)
    assert (Outcome.ALLOWED, 99) == (decision.outcome, decision.remaining)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Lease(max_share=0.0), "max_share"),
        (lambda: Lease(max_share=1.5), "max_share"),
        (lambda: Lease(duration=0.0), "duration"),
        (lambda: Lease(max_keys=0), "max_keys"),
    ],
)
def test_a_lease_refuses_options_out_of_range(build: Callable[[], Lease], named: str) -> None:
    """max_share is a share of the burst, in (0, 1]; duration > 0; max_keys >= 1."""
    with pytest.raises(ConfigurationError, match=named):
        build()


async def test_the_oldest_key_is_dropped_beyond_max_keys_and_its_tokens_lapse() -> None:
    """A replica tracks at most max_keys keys; dropping one lapses what it held."""
    clock = FakeClock()
    instrumentation = RecordingInstrumentation()
    limiter = leasing(clock, Lease(duration=0.05, max_share=0.5, max_keys=1), instrumentation)
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)
    await demand(limiter, bucket, clock)
    await limiter.acquire("k", bucket)  # takes a batch of 10: holds 9
    assert 0 == lease_tokens(instrumentation, "lapsed")
    await limiter.acquire("other", bucket)  # drops "k"
    assert 9 == lease_tokens(instrumentation, "lapsed")
    assert Outcome.ALLOWED == (await limiter.acquire("k", bucket)).outcome  # asked again


# Several real processes, one Redis: the total admitted never exceeds the shared limit.
PROCESSES = 6
TASKS = 20
CAPACITY = 3000
NO_REFILL = TokenBucket(capacity=CAPACITY, refill_rate=0.001)  # one token per 1000 s


def hammer(
    url: str, namespace: str, barrier: Barrier, results: Queue[tuple[int, int, int, int]]
) -> None:
    """Process entry point: report (attempts, allowed, leased, tokens leased and not spent)."""
    results.put(asyncio.run(_hammer(url, namespace, barrier)))


async def _hammer(url: str, namespace: str, barrier: Barrier) -> tuple[int, int, int, int]:
    instrumentation = RecordingInstrumentation()
    async with (
        RedisClient.from_url(url) as client,
        RateLimiter(
            client,
            namespace=namespace,
            lease=Lease(duration=0.02, max_share=0.02),
            remember_denied=0,
            instrumentation=instrumentation,
        ) as limiter,
    ):
        await limiter.peek("shared", NO_REFILL)  # connected (and slots mapped) first
        await asyncio.to_thread(barrier.wait, 30)
        deadline = time.monotonic() + 0.4

        async def task() -> tuple[int, int, int]:
            attempts = allowed = leased = 0
            while time.monotonic() < deadline:
                decision = await limiter.acquire("shared", NO_REFILL)
                attempts += 1
                allowed += decision.allowed
                leased += decision.outcome is Outcome.LEASED
            return attempts, allowed, leased

        counts = await asyncio.gather(*(task() for _ in range(TASKS)))
    attempts, allowed, leased = (sum(column) for column in zip(*counts, strict=True))
    return attempts, allowed, leased, lease_tokens(instrumentation, "taken") - leased


@pytest.mark.parametrize("target", ["standalone", "cluster"])
def test_leased_processes_never_admit_more_than_the_shared_bucket(
    target: str, redis_url: str, cluster_url: str
) -> None:
    """6 processes x 20 tasks leasing one bucket for 0.4 s: at most its capacity passes.

    And at least what was asked (up to the capacity) minus the tokens leased and not
    spent: leases only ever under-admit.
    """
    url = redis_url if target == "standalone" else cluster_url
    namespace = f"lease:{uuid.uuid4().hex}"
    counts: list[tuple[int, int, int, int]] = run_processes(
        hammer, PROCESSES, lambda _, barrier, results: (url, namespace, barrier, results)
    )
    attempts, allowed, leased, unspent = (sum(column) for column in zip(*counts, strict=True))
    assert min(attempts, CAPACITY) - unspent <= allowed <= CAPACITY
    assert leased > 0


async def demand(limiter: RateLimiter, bucket: Policy, clock: FakeClock) -> None:
    """Ten requests in the first 50 ms period, then the clock past its end: the next takes."""
    for _ in range(10):
        clock.advance(0.005)
        assert Outcome.ALLOWED == (await limiter.acquire("k", bucket)).outcome
    clock.advance(0.01)


class Held(CountingStore):
    """A shared store whose calls wait for `release` while `holding`."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.holding = False
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Wait for `release` while `holding`, then decide."""
        if self.holding:
            self.waiting.set()
            await self.release.wait()
        return await super().acquire(key, policies, cost, commit=commit)


async def test_a_request_cancelled_while_taking_a_batch_leaves_the_key_leasable() -> None:
    """Cancelled mid-take: the batch is lost (fewer admitted), the next one is taken."""
    clock = FakeClock()
    store = Held(clock)
    limiter = RateLimiter(store, clock=clock, lease=LEASE)
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)
    await demand(limiter, bucket, clock)
    store.holding = True
    taking = asyncio.create_task(limiter.acquire("k", bucket))
    await store.waiting.wait()
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    store.holding = False
    taken = await limiter.acquire("k", bucket)  # takes a batch again
    assert Outcome.ALLOWED == taken.outcome
    assert Outcome.LEASED == (await limiter.acquire("k", bucket)).outcome


def test_a_lease_keeps_deciding_across_event_loops() -> None:
    """The lease book holds no loop-bound state: a batch taken on one loop is spent on the next."""
    clock = FakeClock()
    limiter = leasing(clock)
    bucket = TokenBucket(capacity=100, refill_rate=1000.0)

    async def take() -> Outcome:
        await demand(limiter, bucket, clock)
        return (await limiter.acquire("k", bucket)).outcome

    async def spend() -> Outcome:
        return (await limiter.acquire("k", bucket)).outcome

    assert Outcome.ALLOWED == asyncio.run(take())  # the request that took the batch
    assert Outcome.LEASED == asyncio.run(spend())
