"""Freshness: stale-while-revalidate, stale-if-error, negative caching and conditions."""

from __future__ import annotations

import asyncio

from scalepy.cache import Cache
from scalepy.testing import FakeClock


async def main() -> None:
    """Walk one price through its freshness windows on a fake clock."""
    clock = FakeClock()
    cache = Cache("memory://", namespace="docs-freshness", clock=clock, jitter=0.0)
    prices = iter([100, 101, 102])
    supplier_down = False

    @cache.cached(ttl=60, stale_ttl=30, stale_if_error=600)
    async def price(sku: str) -> int:
        if supplier_down:
            raise ConnectionError("supplier API unreachable")
        return next(prices)

    assert await price("a-1") == 100

    # 10 s past freshness, within stale_ttl: the old price answers at once and one
    # caller refreshes it in the background.
    clock.advance(70)
    assert await price("a-1") == 100
    await asyncio.sleep(0)  # let the background refresh run
    assert await price("a-1") == 101

    # The refresh at t=70 is fresh until t=130. At t=300 only stale_if_error is left:
    # the function runs, and if it fails the old price is served instead of the error.
    clock.advance(230)
    supplier_down = True
    assert await price("a-1") == 101
    supplier_down = False
    assert await price("a-1") == 102  # a successful call stores the new price

    # A None result is cached too, for negative_ttl (0 would never cache it).
    lookups = 0

    @cache.cached(ttl=3600, negative_ttl=5)
    async def find_user(email: str) -> dict[str, str] | None:
        nonlocal lookups
        lookups += 1
        return None

    assert [await find_user("x@example.com") for _ in range(3)] == [None] * 3
    assert lookups == 1
    clock.advance(5)
    await find_user("x@example.com")
    assert lookups == 2

    # condition decides per result: here, empty search results are not cached.
    searches = 0

    @cache.cached(ttl=60, condition=bool)
    async def search(term: str) -> list[str]:
        nonlocal searches
        searches += 1
        return [] if term == "zzz" else [term.upper()]

    for term in ("abc", "abc", "zzz", "zzz"):
        await search(term)
    assert searches == 3
    await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main())
