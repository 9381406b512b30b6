"""What a rate limiter answers: one `Decision`, with a `PolicyDecision` per policy."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.ratelimit._policies import Policy

__all__ = ("Decision", "Outcome", "PolicyDecision", "build_policy_decision")


class Outcome(enum.Enum):
    """How a decision was reached; also the `scalepy.ratelimit.result` metric attribute."""

    ALLOWED = "allowed"
    """The backend allowed the request."""
    LIMITED = "limited"
    """The backend (or the local cache of denied keys) denied it."""
    LEASED = "leased"
    """Allowed from tokens this replica leased from the backend (`Lease`), no round trip."""
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
        if len(decisions) == 1 and cls is Decision:  # the common case, on every request's path
            (only,) = decisions
            if outcome is None:
                outcome = Outcome.ALLOWED if only.allowed else Outcome.LIMITED
            return _decision(
                only.allowed,
                only.policy.limit,
                only.remaining,
                only.retry_after,
                only.reset_after,
                decisions,
                outcome,
            )
        tightest = min(decisions, key=lambda decision: decision.remaining)
        allowed = all(decision.allowed for decision in decisions)
        if outcome is None:
            outcome = Outcome.ALLOWED if allowed else Outcome.LIMITED
        return cls(  # several policies: rarer, the plain constructor
            allowed=allowed,
            limit=tightest.limit,
            remaining=tightest.remaining,
            retry_after=0.0 if allowed else max(d.retry_after for d in decisions),
            reset_after=max(decision.reset_after for decision in decisions),
            policies=decisions,
            outcome=outcome,
        )


# A frozen dataclass's `__init__` sets each field through `object.__setattr__` and binds
# keywords: a decision is built on every request's path, so the library builds its own
# through each slot's descriptor, by position, about four times quicker. The instances
# are the same (tests/ratelimit/test_decision.py compares them field by field).
_new = object.__new__
_policy_slots: tuple[Callable[[PolicyDecision, Any], None], ...] = tuple(
    PolicyDecision.__dict__[field.name].__set__ for field in fields(PolicyDecision)
)
_decision_slots: tuple[Callable[[Decision, Any], None], ...] = tuple(
    Decision.__dict__[field.name].__set__ for field in fields(Decision)
)


def build_policy_decision(
    policy: Policy, allowed: bool, remaining: int, retry_after: float, reset_after: float
) -> PolicyDecision:
    """`PolicyDecision(...)` by position, the fields in their declared order."""
    decision: PolicyDecision = _new(PolicyDecision)
    set_policy, set_allowed, set_remaining, set_retry_after, set_reset_after = _policy_slots
    set_policy(decision, policy)
    set_allowed(decision, allowed)
    set_remaining(decision, remaining)
    set_retry_after(decision, retry_after)
    set_reset_after(decision, reset_after)
    return decision


def _decision(
    allowed: bool,
    limit: int,
    remaining: int,
    retry_after: float,
    reset_after: float,
    policies: tuple[PolicyDecision, ...],
    outcome: Outcome,
) -> Decision:
    """`Decision(...)` by position, the fields in their declared order."""
    decision: Decision = _new(Decision)
    (
        set_allowed,
        set_limit,
        set_remaining,
        set_retry_after,
        set_reset_after,
        set_policies,
        set_outcome,
    ) = _decision_slots
    set_allowed(decision, allowed)
    set_limit(decision, limit)
    set_remaining(decision, remaining)
    set_retry_after(decision, retry_after)
    set_reset_after(decision, reset_after)
    set_policies(decision, policies)
    set_outcome(decision, outcome)
    return decision
