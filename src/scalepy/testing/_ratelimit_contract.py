"""`RateLimitStoreContract`: the behaviour every `RateLimitStore` shows, as the memory reference.

The checks are plain `async def test_*` methods with bare asserts, so this module
needs no test framework; pytest collects them from a subclass named `Test...`
that provides two fixtures: `store`, the store under test (empty), and `clock`,
the `FakeClock` its decisions read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.ratelimit._memory import MemoryRateLimitStore
from scalepy.ratelimit._policies import GCRA, FixedWindow, SlidingWindow, TokenBucket
from scalepy.testing._clock import FakeClock

if TYPE_CHECKING:
    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy
    from scalepy.ratelimit._store import RateLimitStore

__all__ = ("RateLimitStoreContract",)

BUCKET = TokenBucket(capacity=3, refill_rate=1.0)
WINDOW = SlidingWindow(limit=2, window=60)
FIXED = FixedWindow(limit=2, window=10)

REFERENCE_SCRIPT: tuple[tuple[float, int], ...] = (
    (0.0, 1),
    (0.0, 2),
    (0.0, 1),
    (0.4, 1),
    (0.7, 0),
    (1.5, 2),
    (3.0, 1),
    (9.0, 1),
    (0.0, 3),
)
"""(seconds to advance, cost) of each call in the reference comparison."""


async def acquire(
    store: RateLimitStore, key: str, *policies: Policy, cost: int = 1
) -> tuple[PolicyDecision, ...]:
    """Shorthand for `store.acquire`."""
    return await store.acquire(key, policies, cost)


async def allowed(store: RateLimitStore, key: str, *policies: Policy, cost: int = 1) -> bool:
    """Whether the store allows the request (all policies)."""
    return all(decision.allowed for decision in await acquire(store, key, *policies, cost=cost))


async def remaining(store: RateLimitStore, key: str, *policies: Policy) -> list[int]:
    """Each policy's remaining quota, read with a cost-0 peek."""
    return [decision.remaining for decision in await acquire(store, key, *policies, cost=0)]


async def observe(store: RateLimitStore, clock: FakeClock) -> list[tuple[bool, int, float, float]]:
    """Run `REFERENCE_SCRIPT` on `store`; return each decision, times rounded to milliseconds."""
    seen: list[tuple[bool, int, float, float]] = []
    for seconds, cost in REFERENCE_SCRIPT:
        clock.advance(seconds)
        decisions = await acquire(store, "ref", BUCKET, WINDOW, FIXED, cost=cost)
        seen.extend(
            (d.allowed, d.remaining, round(d.retry_after, 3), round(d.reset_after, 3))
            for d in decisions
        )
    return seen


class RateLimitStoreContract:
    """The behaviour every `RateLimitStore` shows; subclass it to check a store of your own.

    Provide the fixtures `store` (an empty store deciding on `clock`'s time) and
    `clock` (a `FakeClock`, e.g. `FakeClock(1_700_000_000.0)` for a store on
    wall-clock time), and name the subclass `Test...`; the checks are async, so
    run them with pytest-asyncio (`asyncio_mode = "auto"`) or anyio.
    """

    async def test_bucket_allows_the_burst_then_refills(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """Three at once, the fourth waits one second; a second later one more fits."""
        assert [True, True, True, False] == [await allowed(store, "a", BUCKET) for _ in range(4)]
        (denied,) = await acquire(store, "a", BUCKET)
        assert (False, 0, 1.0, 3.0) == (
            denied.allowed,
            denied.remaining,
            denied.retry_after,
            denied.reset_after,
        )
        clock.advance(1.0)
        assert [True, False] == [await allowed(store, "a", BUCKET) for _ in range(2)]

    async def test_several_policies_are_all_or_nothing(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """When the window denies, the bucket keeps its tokens too."""
        assert [True, True, False, False] == [
            await allowed(store, "a", BUCKET, WINDOW) for _ in range(4)
        ]
        assert [1, 0] == await remaining(store, "a", BUCKET, WINDOW)
        bucket, window = await acquire(store, "a", BUCKET, WINDOW)
        assert (True, False) == (bucket.allowed, window.allowed)
        assert [1] == await remaining(store, "a", BUCKET)
        assert await allowed(store, "a", BUCKET)

    async def test_reset_makes_the_quota_whole(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """After reset the key starts over; reset of unknown state or no policy is harmless."""
        assert await allowed(store, "a", BUCKET, WINDOW, cost=2)
        assert [1, 0] == await remaining(store, "a", BUCKET, WINDOW)
        await store.reset("a", [BUCKET, WINDOW])
        assert [3, 2] == await remaining(store, "a", BUCKET, WINDOW)
        await store.reset("never-seen", [BUCKET])
        await store.reset("a", [])

    async def test_equal_policies_share_state(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """A bucket and the GCRA it equals draw from one quota, whatever their names."""
        twin = GCRA(limit=3, period=3.0, name="twin")
        assert BUCKET.rule == twin.rule
        assert await allowed(store, "a", BUCKET, cost=2)
        assert [1] == await remaining(store, "a", twin)
        assert await allowed(store, "a", twin)
        assert not await allowed(store, "a", TokenBucket(3, 1.0, name="named"))

    async def test_a_policy_given_twice_counts_once(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """Two equal policies in one call see the same state and take the cost once."""
        first, second = await acquire(store, "a", BUCKET, BUCKET)
        assert (2, 2) == (first.remaining, second.remaining)
        assert [2] == await remaining(store, "a", BUCKET)

    async def test_keys_are_independent(self, store: RateLimitStore, clock: FakeClock) -> None:
        """Using up one key's quota leaves another's whole, including look-alike keys."""
        assert await allowed(store, "a", BUCKET, cost=3)
        assert not await allowed(store, "a", BUCKET)
        for other in ("b", "A", "{a}", "a:", ""):
            assert [3] == await remaining(store, other, BUCKET)

    async def test_cost_zero_peeks_and_costs_above_the_quota_take_nothing(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """Cost 0 reads; a cost no quota can cover is denied without consuming."""
        assert [3, 2] == await remaining(store, "a", BUCKET, WINDOW)
        assert [3, 2] == await remaining(store, "a", BUCKET, WINDOW)
        decisions = await acquire(store, "a", BUCKET, WINDOW, cost=10**12)
        assert [False, False] == [decision.allowed for decision in decisions]
        assert all(decision.retry_after > 0 for decision in decisions)
        assert [3, 2] == await remaining(store, "a", BUCKET, WINDOW)

    async def test_window_slides(self, store: RateLimitStore, clock: FakeClock) -> None:
        """The previous window's count fades as time passes."""
        window = SlidingWindow(limit=4, window=10)
        clock.advance(10 - clock.now() % 10)  # start of a window
        assert await allowed(store, "a", window, cost=4)
        (denied,) = await acquire(store, "a", window)
        assert (False, 12.5) == (denied.allowed, denied.retry_after)  # 4 * (1 - 2.5 / 10) = 3
        clock.advance(12.5)
        assert [True, False] == [await allowed(store, "a", window) for _ in range(2)]

    async def test_fixed_window_counts_until_the_next_window(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """Two per 10 s window; a denial waits for the next window, which starts whole."""
        clock.advance(10 - clock.now() % 10 + 4)  # 4 s into a window
        assert [True, True, False] == [await allowed(store, "a", FIXED) for _ in range(3)]
        (denied,) = await acquire(store, "a", FIXED)
        assert (False, 0, 6.0, 6.0) == (
            denied.allowed,
            denied.remaining,
            denied.retry_after,
            denied.reset_after,
        )
        clock.advance(5.5)
        assert not await allowed(store, "a", FIXED)
        clock.advance(0.5)
        assert [True, True, False] == [await allowed(store, "a", FIXED) for _ in range(3)]

    async def test_fixed_window_is_all_or_nothing_with_the_other_kinds(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """When the fixed window denies, the bucket and the sliding window keep their quota."""
        assert await allowed(store, "a", BUCKET, WINDOW, FIXED)
        assert await allowed(store, "a", FIXED)
        bucket, window, fixed = await acquire(store, "a", BUCKET, WINDOW, FIXED)
        assert (True, True, False) == (bucket.allowed, window.allowed, fixed.allowed)
        assert [2, 1, 0] == await remaining(store, "a", BUCKET, WINDOW, FIXED)
        decisions = await acquire(store, "a", FIXED, BUCKET, cost=2)
        assert [False, True] == [decision.allowed for decision in decisions]
        assert [2] == await remaining(store, "a", BUCKET)

    async def test_fixed_and_sliding_windows_of_one_size_keep_apart(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """A fixed and a sliding window with equal limit and length are different policies."""
        sliding = SlidingWindow(limit=2, window=10)
        assert FIXED.rule != sliding.rule
        assert await allowed(store, "a", FIXED, cost=2)
        assert [2] == await remaining(store, "a", sliding)

    async def test_bad_calls_are_refused(self, store: RateLimitStore, clock: FakeClock) -> None:
        """A negative cost raises ValueError; no policy decides nothing."""
        message = ""
        try:
            await acquire(store, "a", BUCKET, cost=-1)
        except ValueError as exc:
            message = str(exc)
        assert "cost must be a whole number >= 0" in message
        assert () == await acquire(store, "a")

    async def test_agrees_with_the_memory_reference(
        self, store: RateLimitStore, clock: FakeClock
    ) -> None:
        """A bucket, a sliding and a fixed window decide as on `MemoryRateLimitStore`."""
        reference = FakeClock(clock.now())
        expected = await observe(MemoryRateLimitStore(clock=reference), reference)
        assert expected == await observe(store, clock)
