"""`MemoryRateLimitStore`: the in-process reference store, also the test double."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from scalepy.clock import MonotonicClock
from scalepy.errors import ConfigurationError
from scalepy.ratelimit._algorithms import decide, to_decision

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.clock import Clock
    from scalepy.ratelimit._decision import PolicyDecision
    from scalepy.ratelimit._policies import Policy
    from scalepy.ratelimit._rules import State

__all__ = ("MemoryRateLimitStore",)

_Slot = tuple[str, str]
"""(key, rule id): equal policies share a slot."""


class MemoryRateLimitStore:
    """Rate-limit state in a dict, for one process (tests, single replicas, fallback).

    Decisions run the pure rules of `scalepy.ratelimit._rules`, exactly
    as the Redis script does, on the time of `clock` in integer microseconds.
    Every `acquire` completes without awaiting, so calls from one event loop are
    atomic; the store is not meant to be shared between threads.

    States that have expired (quota whole again) are dropped when next touched.
    At most `max_keys` states are kept: beyond that the least recently used one
    is evicted, which only forgets quota, so that key briefly gets more than its
    limit; size `max_keys` for the number of keys active within one window.

    Args:
        clock: Where time comes from; a `MonotonicClock` when `None`.
        max_keys: Most (key, policy) states kept, >= 1.

    Raises:
        ConfigurationError: `max_keys < 1`.
    """

    __slots__ = ("_clock", "_max_keys", "_states")

    def __init__(self, *, clock: Clock | None = None, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ConfigurationError(f"max_keys must be >= 1, got {max_keys!r}")
        self._clock: Clock = clock or MonotonicClock()
        self._max_keys = max_keys
        # slot -> (state, expiry in us), least recently used first.
        self._states: OrderedDict[_Slot, tuple[State, int]] = OrderedDict()

    def __len__(self) -> int:
        """Return the number of states held, expired ones included until touched."""
        return len(self._states)

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Take `cost` from every policy's quota for `key` if all allow it.

        Args:
            key: The identity being limited.
            policies: The policies; equal policies share state.
            cost: What the request costs, >= 0.
            commit: Consume when allowed; false only asks what `cost` would get.

        Returns:
            One decision per policy, in order.

        Raises:
            ConfigurationError: `cost` is not a whole number >= 0.
        """
        now = int(self._clock.now() * 1_000_000)
        rules = [policy.rule for policy in policies]
        slots = [(key, rule.id) for rule in rules]
        states = [self._load(slot, now) for slot in slots]
        results, new_states, committed = decide(states, rules, now, cost, commit=commit)
        if committed:
            # Each slot is already last: `_load` moved it there, or it is added there.
            for slot, rule, result, state in zip(slots, rules, results, new_states, strict=True):
                self._states[slot] = (state, rule.expires_at(result, now))
            while len(self._states) > self._max_keys:
                self._states.popitem(last=False)
        return tuple(
            [to_decision(policy, result) for policy, result in zip(policies, results, strict=True)]
        )

    def _load(self, slot: _Slot, now: int) -> State:
        entry = self._states.get(slot)
        if entry is None:
            return None
        state, expiry = entry
        if expiry <= now:
            del self._states[slot]
            return None
        self._states.move_to_end(slot)
        return state

    async def reset(self, key: str, policies: Sequence[Policy]) -> None:
        """Forget `key`'s state under `policies`: their quotas are whole again."""
        for policy in policies:
            self._states.pop((key, policy.rule.id), None)

    async def aclose(self) -> None:
        """Do nothing: the store holds no resources."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} states={len(self._states)} max_keys={self._max_keys}>"
