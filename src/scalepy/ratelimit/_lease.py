"""Token leases: a replica decides most requests of a hot key from tokens it took in advance.

Who does what, per `RateLimiter.acquire` with a `Lease`:

1. `LeaseBook.spend` finds the key's `Hold` (one per key and policies), counts
   the request's cost in this lease period's demand, and answers from the tokens
   held, with no I/O, while the lease is fresh and holds enough; the decision's
   outcome is `Outcome.LEASED`.
2. Otherwise `LeaseBook.remote` asks the shared store. When the key was hot on
   this replica in the previous period, that one call asks for a batch: cost
   `size` = min(last period's demand, `max_share` of the strictest burst, what the
   shared quota had left at the last answer), all or nothing across the policies,
   exactly as one request of that cost. The request keeps its own cost; the rest
   is held for `duration` seconds and lapses after (tokens are never given back).

Soundness: every token a replica spends was taken from the shared quota by an
atomic decision, no earlier than `duration` before; a replica holds at most one
batch per key. So leasing never creates tokens: it only moves the instant they
are spent, by at most `duration`. See docs/ratelimit.md for the stated bound.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy._validation import check_finite, check_int
from scalepy.errors import ConfigurationError
from scalepy.ratelimit._decision import build_policy_decision
from scalepy.ratelimit._metrics import LEASE

if TYPE_CHECKING:
    from scalepy.clock import Clock
    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy
    from scalepy.ratelimit._store import RateLimitStore
    from scalepy.telemetry import Recorder

__all__ = ("Hold", "Lease", "LeaseBook")

_TAKEN = {LEASE: "taken"}
_LAPSED = {LEASE: "lapsed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """Let a replica take a hot key's tokens in batches and spend them without a round trip.

    Opt-in for a shared (Redis) backend; ignored on `memory://`, where every
    decision is already local. A key is leased on a replica once its demand there
    in the previous `duration` exceeds the request's cost; cold keys stay exact.

    Every request admitted spends a token the shared quota gave, so the sustained
    rate is never exceeded. Against the same requests decided one by one, a run
    admits fewer by at most the tokens leased and not spent (each batch at most
    `max_share` x the strictest burst, and replicas hold one batch per key), and
    more by at most what the replicas hold at once: a held token spent after the
    shared bucket refilled adds to a burst. See docs/ratelimit.md, "Leases".
    """

    duration: float = 0.05
    """Seconds a batch may be spent before its rest lapses; also the period over
    which a key's demand on this replica sizes its next batch."""
    max_share: float = 0.1
    """Largest batch, as a share of the strictest policy's burst (0 < share <= 1)."""
    max_keys: int = 10_000
    """Most keys whose demand and lease this replica keeps (oldest dropped first)."""

    def __post_init__(self) -> None:
        check_finite("duration", self.duration)
        if not 0 < self.max_share <= 1:
            raise ConfigurationError(f"max_share must be in (0, 1], got {self.max_share!r}")
        check_int("max_keys", self.max_keys)


class Hold:
    """One key's demand on this replica and the batch of tokens it holds."""

    __slots__ = (
        "decisions",
        "demand",
        "last_demand",
        "period_end",
        "room",
        "taken_at",
        "taking",
        "tokens",
        "until",
    )

    def __init__(self, period_end: float) -> None:
        self.demand = 0  # cost asked in this period
        self.last_demand = 0  # ... and in the previous one (0 unless it just ended)
        self.period_end = period_end
        self.room = 0  # the fewest tokens left over the policies at the last answer
        self.taking = False  # a batch is being taken: others ask exactly meanwhile
        self.tokens = 0
        self.until = 0.0
        self.taken_at = 0.0
        self.decisions: tuple[PolicyDecision, ...] = ()  # the answer the batch got


class LeaseBook:
    """A replica's leases, one per key and policies; plain data, no I/O but `remote`."""

    __slots__ = ("_clock", "_holds", "_lease", "_tokens")

    def __init__(self, lease: Lease, clock: Clock, tokens: Recorder) -> None:
        self._lease = lease
        self._clock = clock
        self._tokens = tokens  # the lease.tokens counter: taken and lapsed
        # Oldest first; popitem(last=False) is O(1), next(iter(dict)) after many
        # deletions at the front is not.
        self._holds: OrderedDict[tuple[str, ...], Hold] = OrderedDict()

    def spend(
        self, key: str, policies: tuple[Policy, ...], cost: int
    ) -> tuple[tuple[PolicyDecision, ...] | None, Hold]:
        """Count `cost` in the key's demand and decide from the tokens held if it can.

        Returns:
            The decisions (`None` when the lease lapsed or holds too few: ask
            `remote`), and the key's hold.
        """
        slot = _slot(key, policies)
        hold = self._holds.get(slot)
        now = self._clock.now()
        if hold is None:
            if len(self._holds) >= self._lease.max_keys:
                self._lapse(self._holds.popitem(last=False)[1])
            hold = self._holds[slot] = Hold(now + self._lease.duration)
        elif now >= hold.period_end:
            # The period that just ended sizes the next batch; an older one says nothing.
            recent = now < hold.period_end + self._lease.duration
            hold.last_demand = hold.demand if recent else 0
            hold.demand = 0
            hold.period_end = now + self._lease.duration
        hold.demand += cost
        tokens = hold.tokens
        if not tokens:
            return None, hold
        if now >= hold.until:
            self._lapse(hold)
            return None, hold
        if tokens < cost:
            return None, hold
        hold.tokens = tokens = tokens - cost
        elapsed = now - hold.taken_at
        # Approximate: the shared quota's `remaining` when the batch was taken, plus
        # what this replica still holds; reset_after counted down since then.
        return tuple(
            [
                build_policy_decision(
                    d.policy, True, d.remaining + tokens, 0.0, max(0.0, d.reset_after - elapsed)
                )
                for d in hold.decisions
            ]
        ), hold

    async def remote(
        self,
        store: RateLimitStore,
        hold: Hold,
        key: str,
        policies: tuple[Policy, ...],
        cost: int,
    ) -> tuple[PolicyDecision, ...]:
        """Ask the shared store: for a batch when the key is hot here, else exactly.

        Raises:
            BackendError: The store failed.
        """
        size = hold.last_demand
        if size > cost and not hold.taking:  # hot here: the batch is bounded too
            burst = min([policy.rule.max_cost for policy in policies])
            size = min(size, math.floor(self._lease.max_share * burst), hold.room)
        if size <= cost or hold.taking:
            results = await store.acquire(key, policies, cost)
            hold.room = _room(results)
            return results
        hold.taking = True
        try:
            results = await store.acquire(key, policies, size)
        finally:
            hold.taking = False
        hold.room = _room(results)
        if not _all_allowed(results):  # others took the room meanwhile: ask exactly
            results = await store.acquire(key, policies, cost)
            hold.room = _room(results)
            return results
        self._lapse(hold)  # a batch replaces the rest of the previous one
        hold.tokens = tokens = size - cost
        hold.taken_at = now = self._clock.now()
        hold.until = now + self._lease.duration
        hold.decisions = results
        self._tokens.record(tokens, _TAKEN)
        return tuple(
            [
                build_policy_decision(d.policy, True, d.remaining + tokens, 0.0, d.reset_after)
                for d in results
            ]
        )

    def forget(self, key: str, policies: tuple[Policy, ...]) -> None:
        """Drop the key's lease and demand under `policies` (a reset)."""
        hold = self._holds.pop(_slot(key, policies), None)
        if hold is not None:
            self._lapse(hold)

    def _lapse(self, hold: Hold) -> None:
        if hold.tokens:
            self._tokens.record(hold.tokens, _LAPSED)
            hold.tokens = 0

    def __len__(self) -> int:
        """Return the number of keys tracked."""
        return len(self._holds)


def _slot(key: str, policies: tuple[Policy, ...]) -> tuple[str, ...]:
    """The key of `key`'s hold under `policies`: equal policies share one."""
    if len(policies) == 1:  # most calls: no list to build
        return (key, policies[0].rule.id)
    return (key, *[policy.rule.id for policy in policies])


def _room(results: tuple[PolicyDecision, ...]) -> int:
    """The fewest tokens left over the policies."""
    room = results[0].remaining
    for decision in results:
        if decision.remaining < room:
            room = decision.remaining
    return room


def _all_allowed(results: tuple[PolicyDecision, ...]) -> bool:
    for decision in results:  # noqa: SIM110  # a loop: all() of a generator costs a call each
        if not decision.allowed:
            return False
    return True
