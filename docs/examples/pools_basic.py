"""PoolManager basics: PostgreSQL and Redis opened together, connections borrowed per block."""

from __future__ import annotations

import asyncio
import uuid

from scalepy.pools import (
    PoolClosedError,
    PoolManager,
    PoolNotOpenError,
    PoolOptions,
    PoolTimeoutError,
)

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def main() -> None:
    """Borrow connections, run statements, hit the acquire deadline, read the statistics."""
    pools = PoolManager(
        postgres=DATABASE_URL,
        redis=REDIS_URL,
        options=PoolOptions(min_size=1, max_size=2, acquire_timeout=0.2),
    )
    try:  # not opened yet: the error says how to open it
        await pools.postgres.fetchval("SELECT 1")
    except PoolNotOpenError as exc:
        assert str(exc).startswith("pool 'primary' is not open yet: call `await pools.open()`")

    async with pools:  # opens every pool (retrying within startup_timeout); closes them on exit
        # A connection for the block: reset and returned when the block ends.
        async with pools.postgres.acquire() as connection:
            assert await connection.fetchval("SELECT 40 + 2") == 42

        # One statement on a borrowed connection: fetch, fetchrow, fetchval, execute.
        assert await pools.postgres.fetchval("SELECT $1::int * 2", 21) == 42

        # Every acquire has a deadline: with both connections lent, the third gives up.
        async with pools.postgres.acquire(), pools.postgres.acquire():
            try:
                async with pools.postgres.acquire():
                    raise AssertionError("unreachable: the pool is exhausted")
            except PoolTimeoutError as exc:
                assert str(exc) == "no connection from pool 'primary' within 0.200 s"

        # Redis: scalepy's RedisClient (automatic pipelining, bounded timeouts).
        key = f"docs:pools:{uuid.uuid4().hex}"
        await pools.redis.execute("SET", key, "hello", "EX", 60)
        assert await pools.redis.execute("GET", key) == b"hello"

        stats = pools.statistics().postgres
        assert stats is not None
        primary = stats.primary
        assert (primary.size, primary.idle, primary.used, primary.timeouts) == (2, 2, 0, 1)

    try:  # closed: acquires are refused at once
        await pools.postgres.fetchval("SELECT 1")
    except PoolClosedError as exc:
        assert str(exc) == "pool 'primary' is closed"


if __name__ == "__main__":
    asyncio.run(main())
