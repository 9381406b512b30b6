"""Deciding one request against several rules, all or nothing, with no I/O.

Each rule decides its own kind of limit (`scalepy.ratelimit._rules`); this module
checks the cost, combines the rules' verdicts so a request consumes from every
rule or from none, and turns verdicts into `PolicyDecision`s. The Lua script
mirrors `decide` for Redis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalepy.errors import ConfigurationError
from scalepy.ratelimit._decision import build_policy_decision
from scalepy.ratelimit._rules import RuleResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy
    from scalepy.ratelimit._rules import Rule, State

__all__ = ("check_cost", "decide", "policy_decision", "to_decision")


def to_decision(policy: Policy, result: RuleResult) -> PolicyDecision:
    """Return `result` as `policy`'s `PolicyDecision`, durations in seconds."""
    return policy_decision(
        policy, result.allowed, result.remaining, result.retry_after_us, result.reset_after_us
    )


def policy_decision(
    policy: Policy, allowed: bool, remaining: int, retry_after_us: int, reset_after_us: int
) -> PolicyDecision:
    """Build `policy`'s `PolicyDecision` from a verdict in integer microseconds."""
    return build_policy_decision(
        policy, allowed, remaining, retry_after_us / 1e6, reset_after_us / 1e6
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


def decide(
    states: Sequence[State],
    rules: Sequence[Rule[Any]],
    now: int,
    cost: int,
    *,
    commit: bool = True,
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
    if commit and cost > 0 and _all_allowed(results):
        return results, new_states, True
    if cost > 0:
        untouched, _ = _decide_each(states, rules, now, 0)
        results = tuple(
            RuleResult(asked.allowed, kept.remaining, asked.retry_after_us, kept.reset_after_us)
            for asked, kept in zip(results, untouched, strict=True)
        )
    return results, tuple(states), False


def _all_allowed(results: tuple[RuleResult, ...]) -> bool:
    """Whether every rule allowed: a loop, as `all()` of a generator costs a call per rule."""
    for result in results:  # noqa: SIM110  # on every decision's path
        if not result.allowed:
            return False
    return True


def _decide_each(
    states: Sequence[State], rules: Sequence[Rule[Any]], now: int, cost: int
) -> tuple[tuple[RuleResult, ...], tuple[State, ...]]:
    results: list[RuleResult] = []
    new_states: list[State] = []
    for state, rule in zip(states, rules, strict=True):
        result, new_state = rule.decide(state, now, cost)
        results.append(result)
        new_states.append(new_state)
    return tuple(results), tuple(new_states)
