"""The services the suite relies on answer: Redis, the Redis Cluster and PostgreSQL."""

from __future__ import annotations

import asyncpg

from scalepy.backends.redis import RedisClient


async def test_postgres_answers(postgres_dsn: str) -> None:
    """The test database accepts connections and runs a query."""
    connection = await asyncpg.connect(postgres_dsn, timeout=5)
    try:
        assert 2 == await connection.fetchval("SELECT 1 + 1")
    finally:
        await connection.close()


async def test_cluster_is_healthy(cluster_url: str) -> None:
    """The local cluster has all 16384 slots served by three masters."""
    async with RedisClient.from_url(cluster_url) as cluster:
        info = (await cluster.execute("CLUSTER", "INFO")).decode()
        assert "cluster_state:ok" in info
        assert "cluster_slots_ok:16384" in info
        assert 3 == len(await cluster.execute("CLUSTER", "SLOTS"))
