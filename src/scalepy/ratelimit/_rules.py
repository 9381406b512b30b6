"""The rules policies compile to: each kind's pure decision, Lua encoding and expiry.

A rule is a small frozen value in integer microseconds. Everything that differs
between the kinds of limit lives on its rule class, so the store, the limiter
and the middleware never ask which kind they hold:

- `decide(state, now, cost)` is the pure core: `(state, now)` in, a verdict and
  the state to keep out, no I/O;
- `expires_at(result, now)` says when a committed state stops mattering;
- `script_args` is the rule as `lua/ratelimit.lua` reads it, whose branch of the
  same name (`'g'`, `'w'`, `'f'`) mirrors `decide` operation for operation;
- `id` names the state (equal rules share it) and `max_cost` bounds a request.

Adding a kind means one class here, one policy in `_policies.py` (added to its
`Policy` union) and one branch in the Lua script; `tests/ratelimit/test_agreement.py`
keeps the two in step.

Time is an integer count of microseconds, so the Lua script computes
bit-identical results: every intermediate value stays an integer below 2**53
(each rule bounds its sizes), and Python's `a // b` equals Lua's
`math.floor(a / b)` for such integers because a correctly rounded quotient never
crosses the next whole number.

A cost above a rule's quota can never be allowed. It is clamped to quota + 1
before any arithmetic, which keeps the numbers small and the verdict the same;
`retry_after_us` is then only the earliest moment worth asking again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, TypeAlias, TypeVar

from scalepy.errors import ConfigurationError

__all__ = (
    "MAX_SPAN_US",
    "FixedWindowRule",
    "GcraRule",
    "Rule",
    "RuleResult",
    "SlidingWindowRule",
    "State",
)

MAX_SPAN_US = 2**52 // 4
"""Keeps every product a rule forms (limit x window, tolerance + timestamps) below
2**53, the largest integer a Lua number represents exactly."""

State: TypeAlias = object
"""A rule's stored state, `None` when absent; only the rule that made it reads it
(states are keyed by rule id)."""

S = TypeVar("S")


class RuleResult(NamedTuple):
    """One rule's verdict, in integer microseconds.

    A named tuple: built on every decision's path, where a frozen dataclass costs
    twice as much.
    """

    allowed: bool
    """Whether this rule alone allows the request."""
    remaining: int
    """Requests of cost 1 still allowed now (after this one, when allowed); never negative."""
    retry_after_us: int
    """Wait until the same request is allowed; 0 when allowed."""
    reset_after_us: int
    """Wait until the quota is whole again (when the state may be forgotten)."""


class Rule(Protocol[S]):
    """What every kind of rule provides; `S` is the state it keeps."""

    @property
    def id(self) -> str:
        """Stable identifier, part of the Redis key: equal rules share state."""
        ...

    @property
    def script_args(self) -> tuple[str, int, int]:
        """The rule as the Lua script reads it: its branch and two integers."""
        ...

    @property
    def max_cost(self) -> int:
        """The largest cost this rule can ever allow."""
        ...

    def decide(self, state: S | None, now: int, cost: int) -> tuple[RuleResult, S]:
        """Decide one request.

        Args:
            state: The stored state, `None` when absent.
            now: The current time in microseconds.
            cost: What the request costs, >= 0.

        Returns:
            The verdict and the state to store if the call's cost is committed.
        """
        ...

    def expires_at(self, result: RuleResult, now: int) -> int:
        """Return when a state committed at `now` with `result` stops mattering."""
        ...


def _compile(rule: object, span_us: int, kind: str, a: int, b: int, max_cost: int) -> None:
    """Check `rule`'s size and set what it derives: its id, script args and max cost.

    Raises:
        ConfigurationError: `span_us` is too large to compute exactly.
    """
    if span_us > MAX_SPAN_US:
        raise ConfigurationError(
            f"policy too large to compute exactly ({span_us} us of quota); "
            "use a smaller limit or a shorter window"
        )
    object.__setattr__(rule, "id", f"{kind}{a}x{b}")
    object.__setattr__(rule, "script_args", (kind, a, b))
    object.__setattr__(rule, "max_cost", max_cost)


@dataclass(frozen=True, slots=True)
class GcraRule:
    """GCRA in integer microseconds: one request per `interval_us`, bursts of `burst`.

    The state is the theoretical arrival time (TAT); the bucket holds
    `interval_us * burst` us of credit.

    Raises:
        ConfigurationError: The credit is too large to compute exactly.
    """

    interval_us: int
    burst: int
    id: str = field(init=False, compare=False)
    script_args: tuple[str, int, int] = field(init=False, compare=False)
    max_cost: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        span = self.interval_us * self.burst
        _compile(self, span, "g", self.interval_us, self.burst, max_cost=self.burst)

    def decide(self, state: int | None, now: int, cost: int) -> tuple[RuleResult, int]:
        """Decide one request; the key should expire after `reset_after_us`, when full again."""
        interval = self.interval_us
        tolerance = interval * self.burst
        cost = min(cost, self.burst + 1)
        tat0 = now if state is None else max(state, now)
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

    def expires_at(self, result: RuleResult, now: int) -> int:
        """The bucket is full again at `now + reset_after_us`."""
        return now + result.reset_after_us


@dataclass(frozen=True, slots=True)
class SlidingWindowRule:
    """Sliding-window counter in integer microseconds: `limit` per `window_us`.

    The state is `(current window's start, its count, the previous window's
    count)`. The previous count is weighted by the share of it the sliding
    window still covers; comparisons are scaled by `window_us` to stay integral.

    Raises:
        ConfigurationError: `window_us * limit` is too large to compute exactly.
    """

    window_us: int
    limit: int
    id: str = field(init=False, compare=False)
    script_args: tuple[str, int, int] = field(init=False, compare=False)
    max_cost: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        span = self.window_us * self.limit
        _compile(self, span, "w", self.window_us, self.limit, max_cost=self.limit)

    def decide(
        self, state: tuple[int, int, int] | None, now: int, cost: int
    ) -> tuple[RuleResult, tuple[int, int, int]]:
        """Decide one request; the key should expire after two windows."""
        window, limit = self.window_us, self.limit
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
            retry = self._retry(curr, prev, elapsed, cost, reset)
        result = RuleResult(
            allowed=allowed, remaining=remaining, retry_after_us=retry, reset_after_us=reset
        )
        return result, (start, curr, prev)

    def _retry(self, curr: int, prev: int, elapsed: int, cost: int, reset: int) -> int:
        """Return the smallest wait after which a denied request is allowed.

        Allowed at offset `e` of this window means `prev * (W - e) <= (L - curr - cost) * W`.
        When `curr + cost > L` nothing in this window helps; in the next one `prev`
        becomes `curr` and `curr` becomes 0. The weighted count only falls over time,
        so one step earlier than the answer is always still denied.
        """
        window, limit = self.window_us, self.limit
        spare = limit - curr - cost
        if spare >= 0:  # prev > 0 here, or the request would have been allowed
            return window - (spare * window) // prev - elapsed
        if cost <= limit:  # curr > limit - cost >= 0 here
            return window - elapsed + window - ((limit - cost) * window) // curr
        return reset + window  # more than the quota: never allowed

    def expires_at(self, result: RuleResult, now: int) -> int:
        """The count weighs on the next window too: two windows from `now`."""
        return now + 2 * self.window_us


@dataclass(frozen=True, slots=True)
class FixedWindowRule:
    """Fixed-window counter in integer microseconds: `limit` per window of `window_us`.

    Windows start at the multiples of `window_us` (on Redis, of its `TIME` since
    the Unix epoch). The state is `(the window's start, its count)`; a state from
    an earlier window counts for nothing.

    Raises:
        ConfigurationError: `window_us` or `limit` is too large to compute exactly.
    """

    window_us: int
    limit: int
    id: str = field(init=False, compare=False)
    script_args: tuple[str, int, int] = field(init=False, compare=False)
    max_cost: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Only sums are formed (a timestamp plus a window, a count plus a cost).
        span = max(self.window_us, self.limit)
        _compile(self, span, "f", self.window_us, self.limit, max_cost=self.limit)

    def decide(
        self, state: tuple[int, int] | None, now: int, cost: int
    ) -> tuple[RuleResult, tuple[int, int]]:
        """Decide one request; a denial waits for the next window, which starts whole."""
        start = now - now % self.window_us
        count = state[1] if state is not None and state[0] == start else 0
        cost = min(cost, self.limit + 1)
        allowed = count + cost <= self.limit
        if allowed:
            count += cost
        end = start + self.window_us - now
        result = RuleResult(
            allowed=allowed,
            remaining=self.limit - count,
            retry_after_us=0 if allowed else end,
            reset_after_us=end if count > 0 else 0,
        )
        return result, (start, count)

    def expires_at(self, result: RuleResult, now: int) -> int:
        """One window from `now`: by then the state's window has surely ended."""
        return now + self.window_us
