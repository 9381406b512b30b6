"""Rate-limit policies: small frozen values, validated when built.

`TokenBucket` and `GCRA` are two spellings of one algorithm: GCRA is the token
bucket in "virtual scheduling" form, which keeps one timestamp per key instead of
a token count and a refill time. Both compile to a `GcraRule` (an emission
interval and a burst, in integer microseconds) so one pure decision and one Lua
branch serve both. `SlidingWindow` is the sliding-window counter and
`FixedWindow` the fixed-window counter.

Each policy compiles once, when built, to a rule of `scalepy.ratelimit._rules`,
which holds everything its kind does differently; a new kind of policy is one
class here, added to `Policy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

from scalepy._validation import check_finite, check_int
from scalepy.ratelimit._rules import FixedWindowRule, GcraRule, SlidingWindowRule

if TYPE_CHECKING:
    from scalepy.ratelimit._rules import Rule

__all__ = ("GCRA", "POLICY_KINDS", "FixedWindow", "Policy", "SlidingWindow", "TokenBucket")

MICROS = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A bucket of `capacity` tokens refilled at `refill_rate` tokens per second.

    A request of cost `n` takes `n` tokens; it is denied, and takes nothing, when
    fewer are left. `TokenBucket(capacity=20, refill_rate=10.0)` allows bursts of
    20 and 10 requests per second on average.

    Raises:
        ConfigurationError: `capacity < 1`, or `refill_rate` not a positive number.
    """

    capacity: int
    """Most tokens the bucket holds: the largest burst."""
    refill_rate: float
    """Tokens added per second."""
    name: str = field(default="", compare=False)
    """Optional policy name shown in `RateLimit-Policy` headers."""
    rule: Rule[Any] = field(init=False, repr=False, compare=False)
    """The integer rule the algorithms run, compiled once."""

    def __post_init__(self) -> None:
        check_int("capacity", self.capacity)
        check_finite("refill_rate", self.refill_rate)
        _set_rule(self, GcraRule(max(1, round(MICROS / self.refill_rate)), self.capacity))

    @property
    def limit(self) -> int:
        """Requests of cost 1 allowed at once (the burst)."""
        return self.capacity

    @property
    def window(self) -> float:
        """Seconds to refill the whole bucket: the quota's time window."""
        return self.capacity / self.refill_rate


@dataclass(frozen=True, slots=True)
class GCRA:
    """`limit` requests per `period` seconds, with bursts of up to `burst`.

    The generic cell rate algorithm spaces requests `period / limit` seconds apart
    on average and lets `burst` of them arrive at once. It is the token bucket with
    `capacity=burst` and `refill_rate=limit / period`.

    Raises:
        ConfigurationError: `limit` or `burst` < 1, or `period` not a positive number.
    """

    limit: int
    """Requests per period."""
    period: float = 1.0
    """The period in seconds."""
    burst: int | None = None
    """Requests allowed at once; `limit` when `None`."""
    name: str = field(default="", compare=False)
    """Optional policy name shown in `RateLimit-Policy` headers."""
    rule: Rule[Any] = field(init=False, repr=False, compare=False)
    """The integer rule the algorithms run, compiled once."""

    def __post_init__(self) -> None:
        check_int("limit", self.limit)
        check_finite("period", self.period)
        if self.burst is not None:
            check_int("burst", self.burst)
        interval_us = max(1, round(self.period * MICROS / self.limit))
        _set_rule(self, GcraRule(interval_us, self.limit if self.burst is None else self.burst))

    @property
    def window(self) -> float:
        """The period, in seconds."""
        return self.period


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """At most `limit` requests in any `window` seconds (sliding-window counter).

    The count of the previous fixed window is weighted by how much of it still
    overlaps the sliding window, as Cloudflare's limiter does: two counters per key,
    accurate to within a few percent for evenly spread traffic.

    Raises:
        ConfigurationError: `limit < 1`, `window` not a positive number, or the
            pair too large to compute exactly.
    """

    limit: int
    """Requests allowed per window."""
    window: float
    """The window in seconds."""
    name: str = field(default="", compare=False)
    """Optional policy name shown in `RateLimit-Policy` headers."""
    rule: Rule[Any] = field(init=False, repr=False, compare=False)
    """The integer rule the algorithms run, compiled once."""

    def __post_init__(self) -> None:
        check_int("limit", self.limit)
        check_finite("window", self.window)
        _set_rule(self, SlidingWindowRule(max(1, round(self.window * MICROS)), self.limit))


@dataclass(frozen=True, slots=True)
class FixedWindow:
    """At most `limit` requests per `window` seconds, counted in fixed windows.

    Windows follow each other back to back, aligned to the clock: on Redis each
    starts at a multiple of `window` seconds since the Unix epoch by the server's
    `TIME` (an hourly window runs from one full hour to the next), so every
    replica counts in the same windows. One counter per key, the cheapest
    policy; but a client may spend `limit` at the end of one window and `limit`
    again at the start of the next, twice the quota in a moment. `SlidingWindow`
    smooths that edge.

    Raises:
        ConfigurationError: `limit < 1`, `window` not a positive number, or
            either too large to compute exactly.
    """

    limit: int
    """Requests allowed per window."""
    window: float
    """The window in seconds."""
    name: str = field(default="", compare=False)
    """Optional policy name shown in `RateLimit-Policy` headers."""
    rule: Rule[Any] = field(init=False, repr=False, compare=False)
    """The integer rule the algorithms run, compiled once."""

    def __post_init__(self) -> None:
        check_int("limit", self.limit)
        check_finite("window", self.window)
        _set_rule(self, FixedWindowRule(max(1, round(self.window * MICROS)), self.limit))


Policy = TokenBucket | GCRA | SlidingWindow | FixedWindow
"""Any rate-limit policy."""

POLICY_KINDS: tuple[type[Policy], ...] = get_args(Policy)
"""The policy classes, for checking a value given as a policy."""


def _set_rule(policy: Policy, rule: Rule[Any]) -> None:
    object.__setattr__(policy, "rule", rule)
