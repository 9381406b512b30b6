"""Freshness, decided in pure functions from an entry's header and its remaining time to live.

An entry is written with a hard TTL (the backend expires it) of

    fresh lifetime (ttl, shortened by up to `jitter`) + stale window

where the stale window is `max(stale_ttl, stale_if_error)`. A reader knows the
remaining TTL and the entry's stale window, hence how much freshness is left:
`remaining - stale_window`. Nothing depends on the reader's clock agreeing with
the writer's, so replicas with skewed clocks judge an entry alike.

Early refresh is XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic
Cache Stampede Prevention", VLDB 2015): refresh now if

    load_time * beta * -ln(u) >= freshness left,  u uniform in (0, 1]

so the chance grows as expiry nears and with how slow the value is to compute.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scalepy._validation import check_finite
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from scalepy.cache._codec import Codec

__all__ = ("MAX_TTL", "Policies", "Policy", "Verdict", "judge", "xfetch_horizon")

MAX_TTL = 49 * 86_400.0
"""The longest TTL or stale window an entry header can describe (49 days)."""

# -ln(u) exceeds this with probability e**-20 (2e-9): beyond it XFetch never fires.
_XFETCH_TAIL = 20.0


class Verdict(enum.Enum):
    """What a reader does with an entry it found."""

    FRESH = "fresh"
    """Serve it."""
    REFRESH = "refresh"
    """Serve it, and refresh it in the background (XFetch chose to refresh early)."""
    STALE = "stale"
    """Past its freshness, within stale-while-revalidate: serve it, refresh in the background."""
    STALE_IF_ERROR = "stale_if_error"
    """Load a new value; serve this one only if loading fails."""
    EXPIRED = "expired"
    """Treat as a miss."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """How long values of one cached function (or one `get_or_load` call) stay usable.

    Raises:
        ConfigurationError: A negative or non-finite duration, a `ttl` of 0, a
            jitter outside [0, 1), or a lifetime longer than `MAX_TTL`.
    """

    ttl: float
    """Seconds a value is fresh (before jitter)."""
    stale_ttl: float = 0.0
    """Seconds past freshness the old value is served while one caller refreshes it."""
    stale_if_error: float = 0.0
    """Seconds past freshness the old value is served if refreshing it fails."""
    negative_ttl: float | None = None
    """Seconds a `None` result is fresh: `None` means `ttl`, 0 means never cache `None`."""
    jitter: float = 0.1
    """Fresh lifetimes are shortened by a random fraction up to this, spreading expiries."""
    xfetch_beta: float = 1.0
    """XFetch eagerness; 0 turns early refresh off."""
    origin: str = ""
    """Whose values these are, for messages: the cached function's name ("" for manual calls)."""
    codec: Codec | None = field(default=None, compare=False, repr=False)
    """How these values become bytes and back (typed by the function's annotation); the
    cache's own codec when `None`."""

    def __post_init__(self) -> None:
        check_finite("ttl", self.ttl)
        for name in ("stale_ttl", "stale_if_error", "xfetch_beta", "jitter"):
            check_finite(name, getattr(self, name), inclusive=True)
        if self.negative_ttl is not None:
            check_finite("negative_ttl", self.negative_ttl, inclusive=True)
        if self.jitter >= 1:
            raise ConfigurationError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if self.longest_lifetime > MAX_TTL:
            raise ConfigurationError(
                f"ttl plus the stale window must not exceed {MAX_TTL:.0f} s, "
                f"got {self.longest_lifetime}"
            )

    @property
    def stale_window(self) -> float:
        """Seconds entries outlive their freshness: `max(stale_ttl, stale_if_error)`."""
        return max(self.stale_ttl, self.stale_if_error)

    @property
    def longest_lifetime(self) -> float:
        """Seconds the longest-lived entry of this policy lasts: fresh, then stale."""
        return max(self.ttl, self.negative_ttl or 0.0) + self.stale_window

    def fresh_lifetime(self, is_none: bool, u: float) -> float:
        """Return the jittered fresh lifetime of a new value, or 0 when it is not cached.

        Args:
            is_none: The value is `None` (governed by `negative_ttl`).
            u: A uniform random number in [0, 1).
        """
        ttl = self.ttl if not is_none or self.negative_ttl is None else self.negative_ttl
        return ttl * (1.0 - self.jitter * u)


class Policies:
    """The validated policies of one cache: defaults, `max_ttl`, one `Policy` per spelling.

    Args:
        ttl: The default fresh lifetime.
        max_ttl: The longest lifetime (ttl plus stale window) an entry may have.
        jitter: The cache's TTL jitter.
        xfetch_beta: The cache's XFetch eagerness.

    Raises:
        ConfigurationError: A value out of range.
    """

    __slots__ = ("_jitter", "_made", "_xfetch_beta", "max_ttl", "ttl")

    def __init__(self, *, ttl: float, max_ttl: float, jitter: float, xfetch_beta: float) -> None:
        check_finite("max_ttl", max_ttl)
        if max_ttl > MAX_TTL:
            raise ConfigurationError(f"max_ttl must be <= {MAX_TTL:.0f} s, got {max_ttl}")
        self.max_ttl = max_ttl
        self._jitter = jitter
        self._xfetch_beta = xfetch_beta
        self._made: dict[tuple[float | None, ...], Policy] = {}
        self.ttl = ttl
        self.ttl = self.get(ttl).ttl  # validated like every other lifetime

    def get(
        self,
        ttl: float | None = None,
        *,
        stale_ttl: float = 0.0,
        stale_if_error: float = 0.0,
        negative_ttl: float | None = None,
        jitter: float | None = None,
    ) -> Policy:
        """Return the policy for these lifetimes (the cache's defaults where `None`).

        Raises:
            ConfigurationError: A lifetime out of range, or longer than `max_ttl`.
        """
        spec = (ttl, stale_ttl, stale_if_error, negative_ttl, jitter)
        policy = self._made.get(spec)
        if policy is None:
            policy = Policy(
                ttl=self.ttl if ttl is None else ttl,
                stale_ttl=stale_ttl,
                stale_if_error=stale_if_error,
                negative_ttl=negative_ttl,
                jitter=self._jitter if jitter is None else jitter,
                xfetch_beta=self._xfetch_beta,
            )
            if policy.longest_lifetime > self.max_ttl:
                raise ConfigurationError(
                    f"ttl plus the stale window ({policy.longest_lifetime} s) "
                    f"exceeds max_ttl ({self.max_ttl} s)"
                )
            self._made[spec] = policy
        return policy


def judge(
    remaining: float, stale_window: float, load_time: float, policy: Policy, u: float
) -> Verdict:
    """Decide what to do with an entry that has `remaining` seconds to live.

    Args:
        remaining: Seconds until the backend expires the entry.
        stale_window: The entry's stale window, from its header.
        load_time: Seconds the entry's value took to compute, from its header.
        policy: The reader's policy (its stale windows and XFetch beta apply).
        u: A uniform random number in (0, 1], for XFetch.
    """
    fresh_left = remaining - stale_window
    if fresh_left > 0:
        if fresh_left <= load_time * policy.xfetch_beta * -math.log(u):
            return Verdict.REFRESH
        return Verdict.FRESH
    age = -fresh_left  # seconds past freshness
    if age < policy.stale_ttl:
        return Verdict.STALE
    if age < policy.stale_if_error:
        return Verdict.STALE_IF_ERROR
    return Verdict.EXPIRED


def xfetch_horizon(fresh_until: float, load_time: float, beta: float) -> float:
    """Return the time after which XFetch may fire for a value fresh until `fresh_until`.

    Before it, the chance of an early refresh is below 1e-8, so a hit need not
    draw a random number at all.
    """
    return fresh_until - load_time * beta * _XFETCH_TAIL
