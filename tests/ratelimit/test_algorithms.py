"""The pure rate-limit core: GCRA and the sliding-window counter, in integer microseconds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.ratelimit import PolicyDecision, TokenBucket

# The pure core and its rules, tested directly: no public name (the limiter and Lua wrap them).
from scalepy.ratelimit._algorithms import decide, to_decision
from scalepy.ratelimit._rules import (
    FixedWindowRule,
    GcraRule,
    Rule,
    RuleResult,
    SlidingWindowRule,
    State,
)

BUCKET = GcraRule(interval_us=10, burst=3)  # 3 at once, then one per 10 us
WINDOW = SlidingWindowRule(window_us=100, limit=4)  # 4 per 100 us
FIXED = FixedWindowRule(window_us=100, limit=3)  # 3 per window [100k, 100k + 100)


def test_gcra_allows_the_burst_then_denies() -> None:
    """A full bucket admits `burst` requests at once; the next waits one interval."""
    results = []
    tat = None
    for _ in range(4):
        result, new_tat = BUCKET.decide(tat, 1000, 1)
        results.append(result)
        tat = new_tat if result.allowed else tat
    assert [
        RuleResult(allowed=True, remaining=2, retry_after_us=0, reset_after_us=10),
        RuleResult(allowed=True, remaining=1, retry_after_us=0, reset_after_us=20),
        RuleResult(allowed=True, remaining=0, retry_after_us=0, reset_after_us=30),
        RuleResult(allowed=False, remaining=0, retry_after_us=10, reset_after_us=30),
    ] == results
    assert 1030 == tat


def test_gcra_refills_one_token_per_interval() -> None:
    """After an empty bucket, each interval gives back exactly one request."""
    assert (RuleResult(False, 0, 1, 21), 1030) == BUCKET.decide(1030, 1009, 1)
    assert (RuleResult(True, 0, 0, 30), 1040) == BUCKET.decide(1030, 1010, 1)
    assert (RuleResult(True, 2, 0, 10), 1045) == BUCKET.decide(1030, 1035, 1)
    assert (RuleResult(True, 2, 0, 10), 1110) == BUCKET.decide(1030, 1100, 1)


def test_gcra_costs_take_several_tokens() -> None:
    """A cost of n takes n tokens; one above the burst is never allowed."""
    assert (RuleResult(True, 0, 0, 30), 1030) == BUCKET.decide(None, 1000, 3)
    assert (RuleResult(False, 2, 10, 10), 1010) == BUCKET.decide(1010, 1000, 3)
    # cost 4 > burst: clamped to burst + 1, still denied, retry when full + 1 interval
    assert (RuleResult(False, 3, 10, 0), 1000) == BUCKET.decide(None, 1000, 4)
    assert BUCKET.decide(None, 1000, 4) == BUCKET.decide(None, 1000, 10**30)


def test_gcra_cost_zero_peeks() -> None:
    """Cost 0 reports the quota without taking any."""
    assert (RuleResult(True, 1, 0, 15), 1015) == BUCKET.decide(1015, 1000, 0)
    assert (RuleResult(True, 3, 0, 0), 1000) == BUCKET.decide(None, 1000, 0)


def test_window_counts_within_one_window() -> None:
    """The first window counts requests up to the limit, then denies until it slides."""
    state = None
    results = []
    for _ in range(5):
        result, new_state = WINDOW.decide(state, 1010, 1)
        results.append(result)
        state = new_state if result.allowed else state
    assert [
        RuleResult(allowed=True, remaining=3, retry_after_us=0, reset_after_us=190),
        RuleResult(allowed=True, remaining=2, retry_after_us=0, reset_after_us=190),
        RuleResult(allowed=True, remaining=1, retry_after_us=0, reset_after_us=190),
        RuleResult(allowed=True, remaining=0, retry_after_us=0, reset_after_us=190),
        # 4 + 1 > 4: wait into the next window, until 4 * (100 - e) <= 3 * 100, e = 25
        RuleResult(allowed=False, remaining=0, retry_after_us=90 + 25, reset_after_us=190),
    ] == results
    assert (1000, 4, 0) == state


def test_window_weights_the_previous_window() -> None:
    """The previous count fades linearly as the sliding window leaves it."""
    # previous window had 4; at e = 25 the weight is 4 * 75/100 = 3, one request fits
    assert (RuleResult(True, 0, 0, 175), (1100, 1, 4)) == WINDOW.decide((1000, 4, 0), 1125, 1)
    assert (RuleResult(False, 0, 1, 76), (1100, 0, 4)) == WINDOW.decide((1000, 4, 0), 1124, 1)
    # denied within this window: 2 * (100 - e) + (1 + 2) * 100 <= 400 needs e >= 50
    assert (RuleResult(False, 1, 40, 190), (1100, 1, 2)) == WINDOW.decide((1100, 1, 2), 1110, 2)
    # a state two windows old counts for nothing
    assert (RuleResult(True, 3, 0, 200), (1200, 1, 0)) == WINDOW.decide((1000, 4, 4), 1200, 1)


def test_window_cost_above_the_limit_is_never_allowed() -> None:
    """A cost above the limit is denied and retried no sooner than the reset."""
    assert (RuleResult(False, 4, 100, 0), (1000, 0, 0)) == WINDOW.decide(None, 1000, 5)
    assert (RuleResult(False, 3, 190 + 100, 190), (1000, 1, 0)) == WINDOW.decide(
        (1000, 1, 0), 1010, 10**30
    )


def test_window_cost_zero_peeks() -> None:
    """Cost 0 reports the quota without counting."""
    # 2 * (100 - 50) of the previous window's weight is left: 3 requests fit
    assert (RuleResult(True, 3, 0, 50), (1100, 0, 2)) == WINDOW.decide((1000, 2, 9), 1150, 0)


def test_fixed_window_counts_until_the_window_ends() -> None:
    """The window holding `now` admits `limit`, then denies until the next one starts."""
    state = None
    results = []
    for _ in range(4):
        result, new_state = FIXED.decide(state, 1030, 1)
        results.append(result)
        state = new_state if result.allowed else state
    assert [
        RuleResult(allowed=True, remaining=2, retry_after_us=0, reset_after_us=70),
        RuleResult(allowed=True, remaining=1, retry_after_us=0, reset_after_us=70),
        RuleResult(allowed=True, remaining=0, retry_after_us=0, reset_after_us=70),
        RuleResult(allowed=False, remaining=0, retry_after_us=70, reset_after_us=70),
    ] == results
    assert (1000, 3) == state
    assert (RuleResult(False, 0, 1, 1), (1000, 3)) == FIXED.decide(state, 1099, 1)
    assert (RuleResult(True, 2, 0, 100), (1100, 1)) == FIXED.decide(state, 1100, 1)


def test_fixed_windows_are_aligned_to_time_zero() -> None:
    """Windows start at multiples of their length, wherever the first request falls."""
    assert (RuleResult(True, 2, 0, 1), (1_000_000_000_000, 1)) == FIXED.decide(
        None, 1_000_000_000_099, 1
    )
    # an older window's count counts for nothing
    assert (RuleResult(True, 1, 0, 50), (1200, 2)) == FIXED.decide((1100, 3), 1250, 2)
    assert (RuleResult(True, 2, 0, 100), (-100, 1)) == FIXED.decide(None, -100, 1)


def test_fixed_window_costs_and_peeks() -> None:
    """A cost takes that many; above the limit it is never allowed; cost 0 only reads."""
    assert (RuleResult(False, 1, 60, 60), (1000, 2)) == FIXED.decide((1000, 2), 1040, 2)
    assert (RuleResult(False, 3, 60, 0), (1000, 0)) == FIXED.decide(None, 1040, 4)
    assert FIXED.decide(None, 1040, 4) == FIXED.decide(None, 1040, 10**30)
    assert (RuleResult(True, 1, 0, 60), (1000, 2)) == FIXED.decide((1000, 2), 1040, 0)
    assert (RuleResult(True, 3, 0, 0), (1000, 0)) == FIXED.decide(None, 1040, 0)


def test_decide_is_all_or_nothing() -> None:
    """When one rule denies, no state changes and the others report their quota untouched."""
    rules: list[Rule[Any]] = [BUCKET, WINDOW]
    states: list[State] = [None, (1000, 4, 0)]
    results, new_states, committed = decide(states, rules, 1010, 1)
    assert (False, tuple(states)) == (committed, new_states)
    assert [True, False] == [result.allowed for result in results]
    untouched, _, _ = decide(states, rules, 1010, 0)
    assert [r.remaining for r in untouched] == [r.remaining for r in results]
    assert [r.reset_after_us for r in untouched] == [r.reset_after_us for r in results]
    results, new_states, committed = decide([None, None], rules, 1010, 2)
    assert (True, (1030, (1000, 2, 0))) == (committed, new_states)
    assert [1, 2] == [result.remaining for result in results]


def test_decide_without_commit_only_asks() -> None:
    """commit=False answers for the cost but consumes nothing and reports the quota as is."""
    rules: list[Rule[Any]] = [BUCKET, WINDOW]
    asked, states, committed = decide([None, None], rules, 1010, 2, commit=False)
    assert (False, (None, None)) == (committed, states)
    assert [True, True] == [result.allowed for result in asked]
    untouched, _, _ = decide([None, None], rules, 1010, 0)
    assert untouched == asked


def test_decide_cost_zero_keeps_states() -> None:
    """A peek returns the stored states untouched, even stale ones."""
    states: list[State] = [900, (700, 1, 1)]
    results, new_states, committed = decide(states, [BUCKET, WINDOW], 1010, 0)
    assert (False, tuple(states)) == (committed, new_states)
    assert [True, True] == [result.allowed for result in results]
    assert [3, 4] == [result.remaining for result in results]


def test_decide_rejects_negative_costs() -> None:
    """A negative cost is a programming error."""
    with pytest.raises(ValueError, match="cost must be a whole number >= 0"):
        decide([None], [BUCKET], 0, -1)


def test_expiry_is_when_the_state_stops_mattering() -> None:
    """GCRA state expires when the bucket is full, window state after two windows.

    A fixed window's state is kept for one window after its last change, by when
    its window has surely ended, wherever in it the request fell.
    """
    result = RuleResult(allowed=True, remaining=0, retry_after_us=0, reset_after_us=30)
    assert 1030 == BUCKET.expires_at(result, 1000)
    assert 1200 == WINDOW.expires_at(result, 1000)
    assert 1100 == FIXED.expires_at(result, 1000)


def test_results_convert_to_decisions_in_seconds() -> None:
    """Microseconds become float seconds."""
    policy = TokenBucket(capacity=3, refill_rate=1.0)
    result = RuleResult(allowed=False, remaining=0, retry_after_us=1_500_000, reset_after_us=7)
    expected = PolicyDecision(
        policy=policy, allowed=False, remaining=0, retry_after=1.5, reset_after=7e-6
    )
    assert expected == to_decision(policy, result)


# -- properties ---------------------------------------------------------------------------

gcra_rules = st.builds(GcraRule, interval_us=st.integers(1, 1000), burst=st.integers(1, 10))
window_rules = st.builds(
    SlidingWindowRule, window_us=st.integers(1, 1000), limit=st.integers(1, 10)
)
fixed_rules = st.builds(FixedWindowRule, window_us=st.integers(1, 1000), limit=st.integers(1, 10))
rules = st.one_of(gcra_rules, window_rules, fixed_rules)
histories = st.lists(st.tuples(st.integers(0, 1500), st.integers(0, 10)), max_size=30)


def replay(rule: Rule[Any], history: list[tuple[int, int]], now: int) -> tuple[State, int]:
    """Run (time step, cost) requests from `now`, committing the allowed ones."""
    state: State = None
    for step, cost in history:
        now += step
        _, (state,), _ = decide([state], [rule], now, cost)
    return state, now


def verdict(rule: Rule[Any], state: State, now: int, cost: int) -> RuleResult:
    """The rule's verdict on one request, state unchanged."""
    (result,), _, _ = decide([state], [rule], now, cost)
    return result


@given(rule=rules, history=histories, start=st.integers(-(10**6), 10**15), data=st.data())
def test_retry_after_is_exact(
    rule: Rule[Any], history: list[tuple[int, int]], start: int, data: st.DataObject
) -> None:
    """A denied request is allowed at now + retry_after and still denied one us before."""
    state, now = replay(rule, history, start)
    cost = data.draw(st.integers(1, rule.max_cost), label="cost")
    result = verdict(rule, state, now, cost)
    if result.allowed:
        assert 0 == result.retry_after_us
        return
    retry = result.retry_after_us
    assert retry > 0
    assert verdict(rule, state, now + retry, cost).allowed
    assert not verdict(rule, state, now + retry - 1, cost).allowed


@given(rule=rules, history=histories, start=st.integers(-(10**6), 10**15), cost=st.integers(0, 12))
def test_remaining_is_exactly_what_still_fits(
    rule: Rule[Any], history: list[tuple[int, int]], start: int, cost: int
) -> None:
    """`remaining` is in [0, quota]; a cost of `remaining` fits right now, one more does not."""
    state, now = replay(rule, history, start)
    results, (state,), _ = decide([state], [rule], now, cost)
    remaining = results[0].remaining
    assert 0 <= remaining <= rule.max_cost
    assert verdict(rule, state, now, remaining).allowed
    assert not verdict(rule, state, now, remaining + 1).allowed


@given(rule=rules, history=histories, start=st.integers(-(10**6), 10**15))
def test_reset_after_brings_the_quota_back_whole(
    rule: Rule[Any], history: list[tuple[int, int]], start: int
) -> None:
    """At now + reset_after the whole quota is available again, and not a microsecond sooner."""
    state, now = replay(rule, history, start)
    reset = verdict(rule, state, now, 0).reset_after_us
    assert rule.max_cost == verdict(rule, state, now + reset, 0).remaining
    if reset > 0 and not isinstance(rule, SlidingWindowRule):
        assert rule.max_cost > verdict(rule, state, now + reset - 1, 0).remaining


@given(rule=rules, history=histories, start=st.integers(-(10**6), 10**15), cost=st.integers(0, 12))
def test_denials_and_peeks_change_nothing(
    rule: Rule[Any], history: list[tuple[int, int]], start: int, cost: int
) -> None:
    """A denied request or a cost of 0 leaves the state exactly as it was."""
    state, now = replay(rule, history, start)
    results, (new_state,), allowed = decide([state], [rule], now, cost)
    if not allowed or cost == 0:
        assert state == new_state
    else:
        assert results[0].remaining + cost <= rule.max_cost
