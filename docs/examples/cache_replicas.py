"""Two replicas sharing a Redis cache, each with an in-process L1 kept coherent."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from scalepy.cache import Cache

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Replica A writes; replica B stops serving its L1 copy within the staleness bound."""
    namespace = f"docs-replicas-{uuid.uuid4().hex}"

    def replica() -> Cache:
        return Cache(REDIS_URL, namespace=namespace, local_max_size=10_000, max_ttl=600.0)

    # Two Cache objects with their own connections stand for two processes here.
    async with replica() as replica_a, replica() as replica_b:
        loads = 0

        @replica_b.cached(ttl=300, key="settings:{tenant}")
        async def settings(tenant: str) -> dict[str, str]:
            nonlocal loads
            loads += 1
            return {"theme": "light"}

        await settings("acme")  # a miss: loaded, stored in Redis and in B's L1
        await settings("acme")  # an L1 hit: no network at all
        assert (loads, replica_b.statistics().local_hits) == (1, 1)

        # A writes the key (say, after an admin changed the settings). Its message
        # reaches B's L1 within the staleness bound: 2 heartbeats, 1 s by default.
        bound = replica_a.staleness_bound
        assert bound == 1.0
        await replica_a.set("settings:acme", {"theme": "dark"}, ttl=300)
        written = time.monotonic()
        while await settings("acme") != {"theme": "dark"}:  # noqa: ASYNC110 - B is a client
            await asyncio.sleep(0.005)
        assert time.monotonic() - written <= bound
        assert loads == 1  # B read A's value from Redis: nothing was recomputed
        await replica_a.clear()


if __name__ == "__main__":
    asyncio.run(main())
