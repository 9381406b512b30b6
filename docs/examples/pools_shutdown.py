"""Graceful close: refuse new work at once, let work in progress finish, terminate stragglers."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from scalepy.pools import PoolClosedError, PoolManager

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def main() -> None:
    """A request in flight finishes during close(); one that holds on too long is cut off."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    pools = PoolManager(postgres=DATABASE_URL, close_timeout=1.0)
    await pools.open()
    started = asyncio.Event()

    async def request(seconds: float) -> str:
        async with pools.postgres.acquire() as connection:
            started.set()
            return str(await connection.fetchval("SELECT 'done' FROM pg_sleep($1)", seconds))

    quick = asyncio.create_task(request(0.2))
    await started.wait()
    started.clear()
    stuck = asyncio.create_task(request(30))
    await started.wait()
    closing = asyncio.create_task(pools.aclose())  # grace: close_timeout, 1 s
    await asyncio.sleep(0)

    try:  # from the first moment of close(), new work is refused
        await pools.postgres.fetchval("SELECT 1")
        raise AssertionError("unreachable: the pools are closing")
    except PoolClosedError as exc:
        assert str(exc) == "pool 'primary' is closed"
    assert await quick == "done"  # in flight: it keeps its connection and finishes
    await closing  # after 1 s the stuck request's connection is terminated (a warning says so)
    try:
        await stuck
        raise AssertionError("unreachable: its connection was terminated")
    except asyncpg.ConnectionDoesNotExistError as exc:
        print(f"the stuck request failed: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
