"""The pure core of rate limiting: GCRA and the sliding-window counter, no I/O.

Each function maps `(state, now, rule, cost)` to a verdict and the state to keep.
Time is an integer count of microseconds, so `lua/ratelimit.lua`, which mirrors
these functions operation for operation, computes bit-identical results: every
intermediate value stays an integer below 2**53 (the policies bound their sizes),
and Python's `a // b` equals Lua's `math.floor(a / b)` for such integers because
a correctly rounded quotient never crosses the next whole number.

A cost above a policy's quota can never be allowed. It is clamped to quota + 1
before any arithmetic, which keeps the numbers small and the verdict the same;
`retry_after_us` is then only the earliest moment worth asking again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from scalepy.errors import ConfigurationError
from scalepy.ratelimit._decision import PolicyDecision
from scalepy.ratelimit._policies import _Gcra

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit._policies import Policy, Rule, _Window

__all__ = (
    "GcraState",
    "RuleResult",
    "State",
    "WindowState",
    "check_cost",
    "decide",
    "expires_at",
    "gcra",
    "sliding_window",
)

GcraState: TypeAlias = int | None
"""GCRA's theoretical arrival time (TAT) in microseconds; `None` for a full bucket."""
WindowState: TypeAlias = tuple[int, int, int] | None
"""Sliding window: (current window's start, its count, the previous window's count)."""
State: TypeAlias = GcraState | WindowState
"""Either algorithm's state."""


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict, in integer microseconds."""

    allowed: bool
    """Whether this rule alone allows the request."""
    remaining: int
    """Requests of cost 1 still allowed now (after this one, when allowed); never negative."""
    retry_after_us: int
    """Wait until the same request is allowed; 0 when allowed."""
    reset_after_us: int
    """Wait until the quota is whole again (when the state may be forgotten)."""

    def to_decision(self, policy: Policy) -> PolicyDecision:
        """Return this verdict as `policy`'s `PolicyDecision`, durations in seconds."""
        return policy_decision(
            policy, self.allowed, self.remaining, self.retry_after_us, self.reset_after_us
        )


def policy_decision(
    policy: Policy, allowed: bool, remaining: int, retry_after_us: int, reset_after_us: int
) -> PolicyDecision:
    """Build `policy`'s `PolicyDecision` from a verdict in integer microseconds."""
    return PolicyDecision(
        policy=policy,
        allowed=allowed,
        remaining=remaining,
        retry_after=retry_after_us / 1e6,
        reset_after=reset_after_us / 1e6,
    )


def check_cost(cost: object) -> int:
    """Return `cost` as the int the algorithms (and the Lua script) compute with.

    A whole float such as `2.0` is accepted as its int; `bool`, NaN, infinities,
    fractions and anything else are refused, since the Python reference and the
    Lua script would each read them differently.

    Raises:
        ConfigurationError: `cost` is not a whole number >= 0.
    """
    if type(cost) is int and cost >= 0:  # the common case: one check on the hot path
        return cost
    if isinstance(cost, float) and cost.is_integer() and cost >= 0:
        return int(cost)
    if isinstance(cost, int) and not isinstance(cost, bool) and cost >= 0:
        return int(cost)  # an int subclass (an IntEnum): its plain value
    raise ConfigurationError(f"cost must be a whole number >= 0 (0 only reads), got {cost!r}")


def gcra(rule: _Gcra, tat: GcraState, now: int, cost: int) -> tuple[RuleResult, int]:
    """Decide one request against a GCRA (token bucket) rule.

    Args:
        rule: Emission interval `I` and burst `B`; the bucket holds `I * B` us of credit.
        tat: The stored theoretical arrival time, `None` when absent.
        now: The current time in microseconds.
        cost: Tokens the request takes, >= 0.

    Returns:
        The verdict and the TAT to store if the call's cost is committed; the key
        should expire after `reset_after_us`, when the bucket is full again.
    """
    interval = rule.interval_us
    tolerance = interval * rule.burst
    cost = min(cost, rule.burst + 1)
    tat0 = now if tat is None else max(tat, now)
    new_tat = tat0 + cost * interval
    allowed = new_tat - now <= tolerance
    after = new_tat if allowed else tat0
    result = RuleResult(
        allowed=allowed,
        remaining=max(0, (now + tolerance - after) // interval),
        retry_after_us=0 if allowed else new_tat - now - tolerance,
        reset_after_us=after - now,
    )
    return result, after


def sliding_window(
    rule: _Window, state: WindowState, now: int, cost: int
) -> tuple[RuleResult, tuple[int, int, int]]:
    """Decide one request against a sliding-window counter.

    The previous fixed window's count is weighted by the share of it the sliding
    window still covers; all comparisons are scaled by the window length `W` so
    they stay integral.

    Args:
        rule: Window length `W` in microseconds and the limit `L`.
        state: The stored `(start, current, previous)`, `None` when absent.
        now: The current time in microseconds.
        cost: Requests this one counts for, >= 0.

    Returns:
        The verdict and the state to store if the call's cost is committed; the
        key should expire after `2 * W`.
    """
    window, limit = rule.window_us, rule.limit
    start = now - now % window
    if state is not None and state[0] == start:
        curr, prev = state[1], state[2]
    elif state is not None and state[0] == start - window:
        curr, prev = 0, state[1]
    else:
        curr, prev = 0, 0
    elapsed = now - start
    cost = min(cost, limit + 1)
    allowed = prev * (window - elapsed) + (curr + cost) * window <= limit * window
    if allowed:
        curr += cost
    remaining = max(0, (limit * window - prev * (window - elapsed) - curr * window) // window)
    if curr > 0:
        reset = start + 2 * window - now
    elif prev > 0:
        reset = start + window - now
    else:
        reset = 0
    retry = 0
    if not allowed:
        retry = _window_retry(window, limit, curr, prev, elapsed, cost, reset)
    result = RuleResult(
        allowed=allowed, remaining=remaining, retry_after_us=retry, reset_after_us=reset
    )
    return result, (start, curr, prev)


def _window_retry(
    window: int, limit: int, curr: int, prev: int, elapsed: int, cost: int, reset: int
) -> int:
    """Return the smallest wait after which a denied request is allowed.

    Allowed at offset `e` of this window means `prev * (W - e) <= (L - curr - cost) * W`.
    When `curr + cost > L` nothing in this window helps; in the next one `prev`
    becomes `curr` and `curr` becomes 0. The weighted count only falls over time,
    so one step earlier than the answer is always still denied.
    """
    spare = limit - curr - cost
    if spare >= 0:  # prev > 0 here, or the request would have been allowed
        return window - (spare * window) // prev - elapsed
    if cost <= limit:  # curr > limit - cost >= 0 here
        return window - elapsed + window - ((limit - cost) * window) // curr
    return reset + window  # more than the quota: never allowed


def decide(
    states: Sequence[State], rules: Sequence[Rule], now: int, cost: int, *, commit: bool = True
) -> tuple[tuple[RuleResult, ...], tuple[State, ...], bool]:
    """Decide one request against several rules, all or nothing.

    Each rule is decided from its stored state; equal rules given twice see the
    same state, so they count the request once. When the request is not
    committed (a rule denied it, `commit` is false or `cost` is 0), every rule's
    `remaining` and `reset_after_us` describe the quota as it stays, untouched;
    `allowed` and `retry_after_us` still answer for `cost`.

    Args:
        states: One stored state per rule (the state kind must match the rule's).
        rules: The rules, in order.
        now: The current time in microseconds.
        cost: What the request costs, >= 0.
        commit: Consume the cost when every rule allows; false only asks.

    Returns:
        One verdict per rule, the states to store (the given ones unchanged unless
        committed) and whether the request was committed.

    Raises:
        ConfigurationError: `cost` is not a whole number >= 0.
    """
    cost = check_cost(cost)
    results, new_states = _decide_each(states, rules, now, cost)
    if commit and cost > 0 and all(result.allowed for result in results):
        return results, new_states, True
    if cost > 0:
        untouched, _ = _decide_each(states, rules, now, 0)
        results = tuple(
            RuleResult(asked.allowed, kept.remaining, asked.retry_after_us, kept.reset_after_us)
            for asked, kept in zip(results, untouched, strict=True)
        )
    return results, tuple(states), False


def _decide_each(
    states: Sequence[State], rules: Sequence[Rule], now: int, cost: int
) -> tuple[tuple[RuleResult, ...], tuple[State, ...]]:
    results: list[RuleResult] = []
    new_states: list[State] = []
    for state, rule in zip(states, rules, strict=True):
        result: RuleResult
        new_state: State
        if isinstance(rule, _Gcra):
            assert not isinstance(state, tuple)  # states are keyed by rule id
            result, new_state = gcra(rule, state, now, cost)
        else:
            assert not isinstance(state, int)  # states are keyed by rule id
            result, new_state = sliding_window(rule, state, now, cost)
        results.append(result)
        new_states.append(new_state)
    return tuple(results), tuple(new_states)


def expires_at(rule: Rule, result: RuleResult, now: int) -> int:
    """Return when a committed state stops mattering (the Redis key's expiry).

    Args:
        rule: The rule the state belongs to.
        result: The verdict that produced the state.
        now: The time of the decision, in microseconds.

    Returns:
        `now + reset_after_us` for GCRA, `now + 2 * W` for the sliding window.
    """
    if isinstance(rule, _Gcra):
        return now + result.reset_after_us
    return now + 2 * rule.window_us
