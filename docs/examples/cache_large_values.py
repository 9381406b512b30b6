"""A value over `max_value_bytes` is returned but never stored, so nobody else waits for it."""

from __future__ import annotations

import asyncio
import os

from scalepy.cache import Cache
from scalepy.errors import SerializationError

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Cache a small report, return a 2 MiB export uncached, refuse to `set` it."""
    async with Cache(REDIS_URL, namespace="docs-large", max_value_bytes=2**20) as cache:
        exports = 0

        @cache.cached(ttl=60)
        async def export(year: int) -> str:
            nonlocal exports
            exports += 1
            return "row\n" * (2**19)  # 2 MiB of CSV: over the 1 MiB limit

        @cache.cached(ttl=60)
        async def summary(year: int) -> dict[str, int]:
            return {"year": year, "rows": 2**19}

        assert len(await export(2024)) == 2 * 2**20
        assert len(await export(2024)) == 2 * 2**20  # not cached: computed again
        assert exports == 2
        assert await summary(2024) == {"year": 2024, "rows": 2**19}  # small values are cached
        assert cache.statistics().oversized == 2  # also the scalepy.cache.values.oversized metric

        try:
            await cache.set("export:2024", "row\n" * 2**19)
        except SerializationError:  # set() stores or raises: nothing was stored
            pass
        else:
            raise AssertionError("an oversized set() must raise")
        await cache.delete(export.key(2024), summary.key(2024))


if __name__ == "__main__":
    asyncio.run(main())
