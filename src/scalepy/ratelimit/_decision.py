"""What a rate limiter answers: one `Decision`, with a `PolicyDecision` per policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalepy.ratelimit._policies import Policy

__all__ = ("Decision", "Outcome", "PolicyDecision")


class Outcome(enum.Enum):
    """How a decision was reached; also the `scalepy.ratelimit.result` metric attribute."""

    ALLOWED = "allowed"
    """The backend allowed the request."""
    LIMITED = "limited"
    """The backend (or the local cache of denied keys) denied it."""
    FAIL_OPEN = "fail_open"
    """The backend was unavailable and the policy let the request through."""
    FAIL_CLOSED = "fail_closed"
    """The backend was unavailable and the policy denied the request."""
    LOCAL = "local"
    """The backend was unavailable and the in-process fallback limiter decided."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDecision:
    """One policy's verdict on one request."""

    policy: Policy
    """The policy that decided."""
    allowed: bool
    """Whether this policy alone would allow the request."""
    remaining: int
    """Requests of cost 1 still allowed right now, after this one if it was allowed."""
    retry_after: float
    """Seconds until the same request would be allowed; 0 when allowed."""
    reset_after: float
    """Seconds until the quota is whole again (the key expires then)."""

    @property
    def limit(self) -> int:
        """The policy's quota."""
        return self.policy.limit


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A rate limiter's answer: allowed only if every policy allowed.

    A denied request consumed nothing from any policy. The aggregate fields come
    from the most restrictive policy: the one with the fewest `remaining`.
    """

    allowed: bool
    """Whether the request may proceed."""
    limit: int
    """Quota of the most restrictive policy."""
    remaining: int
    """Fewest requests left over all policies."""
    retry_after: float
    """Seconds until the same request would be allowed (the longest wait); 0 when allowed."""
    reset_after: float
    """Seconds until every policy's quota is whole again."""
    policies: tuple[PolicyDecision, ...]
    """Each policy's own verdict, in the order the policies were given."""
    outcome: Outcome
    """How the decision was reached (backend, cache, or a failure policy)."""

    @classmethod
    def combine(
        cls, decisions: tuple[PolicyDecision, ...], outcome: Outcome | None = None
    ) -> Decision:
        """Aggregate per-policy decisions into one all-or-nothing decision.

        Args:
            decisions: One per policy, at least one.
            outcome: How they were reached; `ALLOWED` or `LIMITED` by the verdict
                when `None` (the backend decided).

        Returns:
            The combined decision.
        """
        if len(decisions) == 1:  # the common case, on every request's path
            (only,) = decisions
            if outcome is None:
                outcome = Outcome.ALLOWED if only.allowed else Outcome.LIMITED
            return cls(
                allowed=only.allowed,
                limit=only.policy.limit,
                remaining=only.remaining,
                retry_after=only.retry_after,
                reset_after=only.reset_after,
                policies=decisions,
                outcome=outcome,
            )
        tightest = min(decisions, key=lambda decision: decision.remaining)
        allowed = all(decision.allowed for decision in decisions)
        if outcome is None:
            outcome = Outcome.ALLOWED if allowed else Outcome.LIMITED
        return cls(
            allowed=allowed,
            limit=tightest.limit,
            remaining=tightest.remaining,
            retry_after=0.0 if allowed else max(d.retry_after for d in decisions),
            reset_after=max(decision.reset_after for decision in decisions),
            policies=decisions,
            outcome=outcome,
        )
