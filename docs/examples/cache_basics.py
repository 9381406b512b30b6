"""Cache basics: a cached async function and the manual API, on the memory backend."""

from __future__ import annotations

import asyncio

from scalepy.cache import Cache
from scalepy.testing import FakeClock

clock = FakeClock()  # time moves only when advance() says so
cache = Cache("memory://", namespace="docs", clock=clock, jitter=0.0)


class Database:
    """Stand-in for a database that counts its queries."""

    queries = 0

    async def profile(self, user_id: int, full: bool) -> dict[str, object]:
        """A slow query."""
        self.queries += 1
        await asyncio.sleep(0.01)
        return {"id": user_id, "full": full}


db = Database()


@cache.cached(ttl=60)
async def get_profile(user_id: int, *, full: bool = False) -> dict[str, object]:
    """Read a profile, through the cache."""
    return await db.profile(user_id, full)


async def main() -> None:
    """Share a cold load, hit, expire, invalidate; then get/set/delete by hand."""
    # Ten concurrent callers of a cold key share one call of the function.
    profiles = await asyncio.gather(*(get_profile(7) for _ in range(10)))
    assert db.queries == 1
    assert profiles[0] == {"id": 7, "full": False}

    # The key is the function's name plus its bound arguments (defaults applied),
    # so every spelling of one call is one entry.
    assert await get_profile(user_id=7, full=False) == profiles[0]
    assert db.queries == 1
    assert get_profile.key(7) == "__main__.get_profile:i7;F"

    # After the TTL the function runs again; invalidate() drops one call's entry.
    clock.advance(60)
    await get_profile(7)
    await get_profile.invalidate(7)
    await get_profile(7)
    assert db.queries == 3

    # The manual API: get (a default on a miss), set, delete, get_or_load.
    await cache.set("greeting", "hello", ttl=30)
    assert await cache.get("greeting") == "hello"
    missing = object()
    assert await cache.get("never-set", missing) is missing  # a cached None is not a miss
    await cache.delete("greeting")
    assert await cache.get("greeting") is None

    async def compute() -> list[int]:
        return [1, 2, 3]

    assert await cache.get_or_load("numbers", compute, ttl=10) == [1, 2, 3]

    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.coalesced, stats.loads) == (2, 4, 9, 4)
    await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main())
