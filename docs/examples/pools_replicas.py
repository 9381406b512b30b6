"""Read replicas: reads routed to a replica, writes to the primary, fallback when one is down."""

from __future__ import annotations

import asyncio
import logging

from scalepy.pools import PoolManager

PRIMARY = "postgresql://postgres@127.0.0.1:5432/test"
REPLICA = "postgresql://postgres@127.0.0.1:5432/postgres"  # another database stands in
DOWN = "postgresql://postgres@127.0.0.1:1/postgres"  # nothing listens on port 1
WHERE = "SELECT current_database()"


async def routing() -> None:
    """Only read_only work goes to the replica."""
    async with PoolManager(postgres=PRIMARY, postgres_replicas=[REPLICA]) as pools:
        assert await pools.postgres.fetchval(WHERE) == "test"  # the primary by default
        assert await pools.postgres.fetchval(WHERE, read_only=True) == "postgres"
        async with pools.postgres.acquire(read_only=True) as connection:
            assert await connection.fetchval(WHERE) == "postgres"


async def fallback() -> None:
    """A replica that cannot be reached is skipped: reads go to the primary meanwhile."""
    pools = PoolManager(postgres=PRIMARY, postgres_replicas=[DOWN], replica_retry_delay=1.0)
    async with pools:  # a replica that is down does not stop the start-up (it logs a warning)
        assert await pools.postgres.fetchval(WHERE, read_only=True) == "test"
        stats = pools.postgres.statistics()
        assert stats.replicas_available == (False,)  # probed again after replica_retry_delay
        assert stats.read_fallbacks == 1


async def main() -> None:
    """Both scenarios."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    await routing()
    await fallback()


if __name__ == "__main__":
    asyncio.run(main())
