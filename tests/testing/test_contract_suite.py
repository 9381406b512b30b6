"""The store contracts shipped in `scalepy.testing` catch broken stores.

Their use by a third party is shown, and run, by docs/examples/store_contract.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from scalepy.cache import MemoryCacheStore
from scalepy.ratelimit import MemoryRateLimitStore
from scalepy.testing import CacheStoreContract, FakeClock, RateLimitStoreContract

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit import Policy, PolicyDecision


class ForgetfulStore(MemoryCacheStore):
    """A broken cache store: a later, shorter `keep_for` cuts a tag version's life."""

    async def invalidate_tags(self, tags: Sequence[str], keep_for: float) -> None:
        """Bump the versions, then forget the longer keep time."""
        await super().invalidate_tags(tags, keep_for)
        now = self._clock.now()
        for tag in tags:
            self._tags[tag] = (self._tags[tag][0], now + keep_for)


class CostBlindStore(MemoryRateLimitStore):
    """A broken rate-limit store: every request costs at most one."""

    async def acquire(
        self, key: str, policies: Sequence[Policy], cost: int, *, commit: bool = True
    ) -> tuple[PolicyDecision, ...]:
        """Decide as if the cost were at most one."""
        return await super().acquire(key, policies, min(cost, 1), commit=commit)


async def test_the_cache_contract_catches_a_broken_store() -> None:
    """A store that shortens kept tag versions fails the contract and the reference check."""
    contract = CacheStoreContract()
    clock = FakeClock()

    async def advance(seconds: float, keys: Sequence[str], tags: Sequence[str]) -> None:
        clock.advance(seconds)

    with pytest.raises(AssertionError):
        await contract.test_tag_versions_are_kept_then_forgotten(
            ForgetfulStore(clock=clock), advance
        )
    with pytest.raises(AssertionError):
        await contract.test_agrees_with_the_memory_reference(ForgetfulStore(clock=clock), advance)


async def test_the_rate_limit_contract_catches_a_broken_store() -> None:
    """A store that ignores the cost disagrees with the memory reference."""
    contract = RateLimitStoreContract()
    clock = FakeClock(1_700_000_000.0)
    with pytest.raises(AssertionError):
        await contract.test_agrees_with_the_memory_reference(CostBlindStore(clock=clock), clock)
    with pytest.raises(AssertionError):
        await contract.test_cost_zero_peeks_and_costs_above_the_quota_take_nothing(
            CostBlindStore(clock=clock), clock
        )
