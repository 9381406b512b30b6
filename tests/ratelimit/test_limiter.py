"""RateLimiter: decisions, denial cache, shadow mode, decorator, waiting, failure policies."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends import parse_backend_url
from scalepy.errors import ConfigurationError, CostExceedsBurst, RateLimitExceeded
from scalepy.ratelimit import (
    FixedWindow,
    MemoryRateLimitStore,
    Outcome,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)

# The decisions metric's definition, from the limiter's catalogue.
from scalepy.ratelimit._metrics import DECISIONS
from scalepy.testing import FakeClock, RecordingInstrumentation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from scalepy.ratelimit import Policy, PolicyDecision
    from tests.support.redis_server import RedisServer

BURST = TokenBucket(capacity=3, refill_rate=1.0)
MARGIN = 0.5  # seconds of slack on a loaded CI machine


class CountingStore(MemoryRateLimitStore):
    """The real memory store, counting the decisions it is asked for."""

    calls = 0

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Count, then decide as the memory store does."""
        self.calls += 1
        return await super().acquire(key, policies, cost, commit=commit)


async def test_allows_the_burst_then_denies_with_retry_after() -> None:
    """Three of cost 1 pass, the fourth waits one refill interval."""
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    decisions = [await limiter.acquire("k", BURST) for _ in range(4)]
    assert [True, True, True, False] == [d.allowed for d in decisions]
    assert [2, 1, 0, 0] == [d.remaining for d in decisions]
    assert Outcome.LIMITED == decisions[-1].outcome
    assert 1.0 == decisions[-1].retry_after
    clock.advance(1.0)
    assert (await limiter.acquire("k", BURST)).allowed


async def test_several_policies_are_all_or_nothing() -> None:
    """A request denied by one policy consumes nothing from the others."""
    limiter = RateLimiter(clock=FakeClock())
    per_hour = SlidingWindow(limit=2, window=3600)
    assert (await limiter.acquire("k", BURST, per_hour)).allowed
    assert (await limiter.acquire("k", BURST, per_hour)).allowed
    denied = await limiter.acquire("k", BURST, per_hour)
    assert not denied.allowed
    assert [True, False] == [p.allowed for p in denied.policies]
    assert 1 == (await limiter.peek("k", BURST)).remaining  # the bucket kept its token


async def test_known_denials_are_answered_without_the_store() -> None:
    """Until retry_after has passed, a denied key does not reach the store again."""
    clock = FakeClock()
    store = CountingStore(clock=clock)
    limiter = RateLimiter(store, clock=clock)
    for _ in range(4):
        await limiter.acquire("k", BURST)
    assert 4 == store.calls
    clock.advance(0.25)
    again = await limiter.acquire("k", BURST)
    assert (False, 0.75, 4) == (again.allowed, again.retry_after, store.calls)
    clock.advance(0.75)
    assert (await limiter.acquire("k", BURST)).allowed
    assert 5 == store.calls


async def test_a_remembered_denial_is_checked_again_after_remember_denied_for() -> None:
    """Past `remember_denied_for` the store is asked again; retry_after stays the store's."""
    clock = FakeClock()
    store = CountingStore(clock=clock)
    limiter = RateLimiter(store, clock=clock, remember_denied_for=0.5)
    slow = TokenBucket(capacity=1, refill_rate=0.1)  # a denial waits 10 s
    await limiter.acquire("k", slow)
    await limiter.acquire("k", slow)  # denied, remembered
    clock.advance(0.25)
    remembered = await limiter.acquire("k", slow)
    assert (False, 9.75, 2) == (remembered.allowed, remembered.retry_after, store.calls)
    clock.advance(0.25)
    asked = await limiter.acquire("k", slow)
    assert (False, 9.5, 3) == (asked.allowed, asked.retry_after, store.calls)


async def test_a_reset_by_another_replica_reaches_this_one_within_remember_denied_for() -> None:
    """Two limiters on one store: the other's reset is seen once the denial is rechecked."""
    clock = FakeClock()
    store = MemoryRateLimitStore(clock=clock)
    this, other = RateLimiter(store, clock=clock), RateLimiter(store, clock=clock)
    slow = TokenBucket(capacity=1, refill_rate=0.01)  # a denial waits 100 s
    await this.acquire("k", slow)
    assert not (await this.acquire("k", slow)).allowed
    await other.reset("k", slow)
    assert Outcome.LIMITED == (await this.acquire("k", slow)).outcome  # still remembered
    clock.advance(1.0)  # the default remember_denied_for
    assert (await this.acquire("k", slow)).allowed


RESET_IN_ANOTHER_PROCESS = """
import asyncio, sys
from scalepy.ratelimit import RateLimiter, TokenBucket

async def main() -> None:
    async with RateLimiter(sys.argv[1], namespace=sys.argv[2]) as limiter:
        await limiter.reset(sys.argv[3], TokenBucket(capacity=1, refill_rate=0.01))

asyncio.run(main())
"""


async def test_a_reset_in_another_process_reaches_a_replica_that_remembers_a_denial(
    redis_url: str, key_prefix: str
) -> None:
    """Replicas as processes on one Redis: a reset there lifts the denial here within 1 s."""
    clock = FakeClock()
    slow = TokenBucket(capacity=1, refill_rate=0.01)
    async with RateLimiter(redis_url, namespace=key_prefix, clock=clock) as replica:
        await replica.acquire("client", slow)
        assert not (await replica.acquire("client", slow)).allowed  # remembered
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RESET_IN_ANOTHER_PROCESS, redis_url, key_prefix, "client"
        )
        assert 0 == await process.wait()
        assert not (await replica.acquire("client", slow)).allowed  # within the bound
        clock.advance(1.0)
        assert (await replica.acquire("client", slow)).allowed


async def test_the_denial_memory_is_bounded_and_can_be_turned_off() -> None:
    """The oldest remembered denial is forgotten first; 0 remembers nothing."""
    clock = FakeClock()
    store = CountingStore(clock=clock)
    limiter = RateLimiter(store, clock=clock, remember_denied=2)
    one = TokenBucket(capacity=1, refill_rate=1.0)
    for key in ("a", "b", "c"):
        await limiter.acquire(key, one)
        await limiter.acquire(key, one)  # denied, remembered
    assert 6 == store.calls
    await limiter.acquire("b", one)
    await limiter.acquire("c", one)
    assert 6 == store.calls  # still remembered
    await limiter.acquire("a", one)
    assert 7 == store.calls  # evicted as the oldest
    forgetful = RateLimiter(store, clock=clock, remember_denied=0)
    await forgetful.acquire("c", one)
    assert 8 == store.calls


async def test_shadow_mode_reports_but_never_denies() -> None:
    """In shadow mode the would-be denial is counted as limited and allowed through."""
    recording = RecordingInstrumentation()
    limiter = RateLimiter(shadow=True, clock=FakeClock(), instrumentation=recording)
    decisions = [await limiter.acquire("k", BURST) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert Outcome.LIMITED == decisions[-1].outcome
    assert 2 == recording.value(DECISIONS.name, {"scalepy.ratelimit.result": "limited"})
    assert 3 == recording.value(DECISIONS.name, {"scalepy.ratelimit.result": "allowed"})
    assert 2 == len([e for e in recording.events if e.name == "scalepy.ratelimit.limited"])


async def test_backends_by_config_and_a_readable_repr() -> None:
    """A parsed memory:// config works like the URL; repr shows store and policy."""
    async with RateLimiter(parse_backend_url("memory://"), on_failure="local") as limiter:
        assert (await limiter.acquire("k", BURST)).allowed
        assert (
            "<RateLimiter store=MemoryRateLimitStore on_failure=local shadow=False guard="
            in repr(limiter)
        )


async def test_peek_answers_for_a_cost_without_consuming() -> None:
    """Peek says whether a request would pass and what is left; reset restores."""
    limiter = RateLimiter(clock=FakeClock(), remember_denied=0)
    await limiter.acquire("k", BURST, cost=2)
    peeked = await limiter.peek("k", BURST)
    assert (True, 1, 0.0) == (peeked.allowed, peeked.remaining, peeked.retry_after)
    costly = await limiter.peek("k", BURST, cost=2)
    assert (False, 1, 1.0) == (costly.allowed, costly.remaining, costly.retry_after)
    assert 1 == (await limiter.peek("k", BURST)).remaining
    await limiter.reset("k", BURST)
    assert 3 == (await limiter.peek("k", BURST)).remaining


async def test_denials_report_the_untouched_quota_of_the_other_policies() -> None:
    """A denied request leaves every quota as it was, and says so."""
    limiter = RateLimiter(clock=FakeClock())
    hourly = SlidingWindow(limit=5, window=3600)
    await limiter.acquire("k", BURST, hourly, cost=3)
    denied = await limiter.acquire("k", BURST, hourly, cost=2)
    assert [False, True] == [p.allowed for p in denied.policies]
    assert [0, 2] == [p.remaining for p in denied.policies]


async def test_remembered_denials_respect_cost_and_reset() -> None:
    """A costly denial does not deny cheaper requests; reset forgets every denial of the key."""
    clock = FakeClock()
    store = CountingStore(clock=clock)
    limiter = RateLimiter(store, clock=clock)
    hourly = SlidingWindow(limit=10, window=3600)
    await limiter.acquire("k", BURST, cost=2)
    assert not (await limiter.acquire("k", BURST, cost=3)).allowed
    assert (await limiter.acquire("k", BURST, cost=1)).allowed  # cheaper: asks the store
    assert 3 == store.calls
    assert not (await limiter.acquire("k", BURST, cost=3)).allowed  # remembered
    assert 3 == store.calls
    assert not (await limiter.acquire("k", BURST, hourly)).allowed  # other policies: asks
    assert 4 == store.calls
    await limiter.reset("k", BURST)
    assert (await limiter.acquire("k", BURST, hourly)).allowed


async def test_the_decorator_raises_with_retry_after() -> None:
    """A limited call raises RateLimitExceeded instead of running."""
    limiter = RateLimiter(clock=FakeClock())
    calls: list[int] = []

    @limiter.limit(TokenBucket(capacity=1, refill_rate=0.5), key=lambda user, **_: f"u:{user}")
    async def work(user: int, *, note: str = "") -> int:
        calls.append(user)
        return user

    assert 7 == await work(7)
    assert 8 == await work(8, note="another key")
    with pytest.raises(RateLimitExceeded) as raised:
        await work(7)
    assert ("u:7", 2.0) == (raised.value.key, raised.value.retry_after)
    assert [7, 8] == calls
    assert "work" == work.__name__


async def test_wait_sleeps_until_allowed_within_the_deadline() -> None:
    """wait() sleeps for retry_after; past max_wait it raises at once."""
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    await limiter.acquire("k", BURST, cost=3)
    with pytest.raises(RateLimitExceeded):
        await limiter.wait("k", BURST, max_wait=0.5)
    waiter = asyncio.create_task(limiter.wait("k", BURST, max_wait=2.0))
    await clock.wait_for_sleepers(1)
    clock.advance(1.0)
    assert (await waiter).allowed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda limiter: limiter.acquire("k"), "at least one policy"),
        (lambda limiter: limiter.acquire("k", BURST, cost=-1), "cost must be a whole number >= 0"),
        (lambda limiter: limiter.peek("k", BURST, cost=-1), "cost must be a whole number >= 0"),
    ],
)
async def test_bad_calls_are_refused(call: object, message: str) -> None:
    """Calls that can never be decided raise ConfigurationError."""
    limiter = RateLimiter()
    with pytest.raises(ConfigurationError, match=message):
        await call(limiter)  # type: ignore[operator]


@pytest.mark.parametrize("cost", [math.nan, math.inf, 1.5, True, False, "1", None, -1, -2.0])
async def test_costs_that_are_not_whole_numbers_are_refused(cost: Any) -> None:
    """NaN, infinities, fractions, bools and non-numbers are refused before any quota is read."""
    store = CountingStore()
    limiter = RateLimiter(store)
    with pytest.raises(ConfigurationError, match="cost must be a whole number >= 0"):
        await limiter.acquire("k", BURST, cost=cost)
    assert 0 == store.calls


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_key_function_returning_none_is_a_configuration_error(
    backend: str, redis_url: str, key_prefix: str
) -> None:
    """A decorated call whose key function returns None fails typed on every store.

    The Redis store used to fail deep inside with an AttributeError, and the memory
    store quietly limited every such call under one shared key.
    """
    url = "memory://" if backend == "memory" else redis_url

    def user_key(user: str) -> Any:  # untyped user code that forgets the anonymous case
        return None if user == "anonymous" else f"user:{user}"

    async with RateLimiter(url, namespace=key_prefix) as limiter:

        @limiter.limit(BURST, key=user_key)
        async def fetch(user: str) -> str:
            return user

        assert "alice" == await fetch("alice")
        with pytest.raises(ConfigurationError, match="key must be a str, got NoneType"):
            await fetch("anonymous")


async def test_a_whole_float_cost_counts_as_its_int() -> None:
    """`cost=2.0` takes two tokens, as `cost=2` does."""
    limiter = RateLimiter(clock=FakeClock())
    decision = await limiter.acquire("k", BURST, cost=2.0)  # type: ignore[arg-type]  # a float on purpose
    assert (True, 1) == (decision.allowed, decision.remaining)


HOURLY = SlidingWindow(limit=10, window=3600)


@pytest.mark.parametrize(
    "call",
    [
        lambda limiter: limiter.acquire("k", HOURLY, BURST, cost=4),
        lambda limiter: limiter.peek("k", HOURLY, BURST, cost=4),
        lambda limiter: limiter.wait("k", HOURLY, BURST, cost=4, max_wait=60),
    ],
    ids=["acquire", "peek", "wait"],
)
async def test_a_cost_above_the_burst_raises_a_typed_denial(
    call: Callable[[RateLimiter], Awaitable[object]],
) -> None:
    """A cost no quota could ever cover raises CostExceedsBurst: a RateLimitExceeded forever."""
    store = CountingStore()
    with pytest.raises(CostExceedsBurst) as raised:
        await call(RateLimiter(store))
    error = raised.value
    assert isinstance(error, RateLimitExceeded)
    assert isinstance(error, ValueError)
    assert ("k", 4, 3, math.inf) == (error.key, error.cost, error.burst, error.retry_after)
    expected = (
        "a request of cost 4 for 'k' can never be allowed: "
        "the strictest policy allows at most 3 at once"
    )
    assert expected == str(error)
    assert 0 == store.calls


async def test_a_cost_above_several_bursts_names_the_strictest() -> None:
    """With bursts 5 and 3, a cost of 6 is refused naming 3, whatever the policies' order."""
    loose = TokenBucket(capacity=5, refill_rate=1.0)
    limiter = RateLimiter(clock=FakeClock())
    with pytest.raises(CostExceedsBurst) as raised:
        await limiter.acquire("k", loose, BURST, cost=6)
    assert 3 == raised.value.burst


async def test_a_fixed_window_decides_with_the_other_kinds() -> None:
    """Its limit is its burst, it denies until the window ends and never eats others' quota."""
    minute = FixedWindow(limit=2, window=60)
    limiter = RateLimiter(clock=FakeClock(45.0))  # 15 s before the window ends
    with pytest.raises(CostExceedsBurst) as raised:
        await limiter.acquire("k", BURST, minute, cost=3)
    assert 2 == raised.value.burst
    assert [True, True] == [(await limiter.acquire("k", BURST, minute)).allowed for _ in range(2)]
    denied = await limiter.acquire("k", BURST, minute)
    assert (False, 15.0, 0) == (denied.allowed, denied.retry_after, denied.remaining)
    assert [True, False] == [p.allowed for p in denied.policies]
    assert 1 == (await limiter.peek("k", BURST)).remaining  # the bucket kept its token


def test_a_decorator_whose_cost_is_above_the_burst_is_a_configuration_error() -> None:
    """Every call would be refused, so the decorator refuses to be built."""
    with pytest.raises(ConfigurationError, match="cost 4 can never be allowed: the strictest"):
        RateLimiter().limit(BURST, key="k", cost=4)


def test_bad_configuration_is_refused() -> None:
    """Unknown failure policies and non-positive timeouts fail at construction."""
    with pytest.raises(ConfigurationError, match="on_failure must be one of"):
        RateLimiter(on_failure="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        RateLimiter(timeout=0)
    with pytest.raises(ConfigurationError, match="remember_denied"):
        RateLimiter(remember_denied=-1)
    with pytest.raises(ConfigurationError, match="remember_denied_for must be a finite number > 0"):
        RateLimiter(remember_denied_for=0)
    with pytest.raises(ValueError, match="must be a number"):
        TokenBucket(capacity=1, refill_rate="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large to compute exactly"):
        SlidingWindow(limit=10**9, window=10**9)
    with pytest.raises(ValueError, match="capacity"):
        TokenBucket(capacity=0, refill_rate=1.0)
    with pytest.raises(ValueError, match="refill_rate"):
        TokenBucket(capacity=1, refill_rate=-1.0)


@pytest.mark.parametrize(
    ("limit", "window", "message"),
    [
        (0, 60, "limit must be"),
        (5, 0, "window must be a finite number > 0"),
        (5, float("nan"), "window must be a finite number > 0"),
        (True, 60, "limit must be"),
        (5, 10**10, "too large to compute exactly"),
        (2**51, 60, "too large to compute exactly"),
    ],
)
def test_a_fixed_window_is_checked_when_built(limit: int, window: float, message: str) -> None:
    """A fixed window refuses what it cannot count exactly, at construction."""
    with pytest.raises(ConfigurationError, match=message):
        FixedWindow(limit=limit, window=window)
    assert FixedWindow(limit=2**50, window=10**9).rule.max_cost == 2**50  # the largest sizes


@pytest.mark.parametrize(
    ("on_failure", "outcome", "allowed"),
    [
        ("fail_open", Outcome.FAIL_OPEN, [True] * 5),
        ("fail_closed", Outcome.FAIL_CLOSED, [False] * 5),
        ("local", Outcome.LOCAL, [True, True, True, False, False]),
    ],
)
async def test_failure_policies_while_redis_is_down_and_recovery(
    redis_server: RedisServer, on_failure: str, outcome: Outcome, allowed: list[bool]
) -> None:
    """Redis stopped: each policy answers within the timeout; Redis back: limiting resumes."""
    clock = FakeClock()
    recording = RecordingInstrumentation()
    async with RateLimiter(
        redis_server.url,
        timeout=0.2,
        on_failure=on_failure,  # type: ignore[arg-type]
        clock=clock,
        instrumentation=recording,
    ) as limiter:
        assert Outcome.ALLOWED == (await limiter.acquire("k", BURST)).outcome
        redis_server.stop()
        started = time.monotonic()
        decisions = [await limiter.acquire("other", BURST) for _ in range(5)]
        assert time.monotonic() - started < 0.2 + MARGIN
        assert [outcome] * 5 == [d.outcome for d in decisions]
        assert allowed == [d.allowed for d in decisions]
        assert 3 == recording.value("scalepy.ratelimit.backend.errors")  # then the guard opened
        redis_server.start()
        clock.advance(1.0)  # past the guard's delay: the next call probes Redis
        back = [await limiter.acquire("k", BURST) for _ in range(4)]
        assert [Outcome.ALLOWED] * 3 + [Outcome.LIMITED] == [d.outcome for d in back]


async def test_a_policy_that_is_not_a_policy_object_is_refused() -> None:
    """`acquire(key, "10/s")` raises ConfigurationError naming the policy classes.

    It used to fail with AttributeError deep in the limiter.
    """
    limiter = RateLimiter()
    with pytest.raises(ConfigurationError, match=r"a policy must be a TokenBucket, GCRA"):
        await limiter.acquire("k", "10/s")  # type: ignore[arg-type]  # the misuse under test
    with pytest.raises(ConfigurationError, match=r"TokenBucket\(capacity=20, refill_rate=10.0\)"):
        await limiter.reset("k", "10/s")  # type: ignore[arg-type]


def test_limit_refuses_a_sync_function() -> None:
    """`@limiter.limit(...)` on a sync function fails when decorating, not in every call's await."""
    limiter = RateLimiter()

    def handler() -> int:
        return 1

    decorate = limiter.limit(TokenBucket(capacity=2, refill_rate=1.0), key="k")
    with pytest.raises(ConfigurationError, match=r"decorates async functions \(async def\)"):
        decorate(handler)  # type: ignore[arg-type]  # the misuse under test
