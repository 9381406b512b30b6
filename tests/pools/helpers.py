"""What the pool tests share: counting a pool's server sessions, and fresh names."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

__all__ = ("backend_count", "unique_name", "wait_for_backends")


def unique_name() -> str:
    """An `application_name` no other test uses, so its sessions can be counted."""
    return f"scalepy-test-{uuid.uuid4().hex[:12]}"


async def backend_count(dsn: str, application_name: str) -> int:
    """How many server sessions carry `application_name`, seen from a separate connection."""
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            application_name,
        )
    finally:
        await connection.close()
    return count


async def wait_for_backends(dsn: str, application_name: str, expected: int) -> int:
    """Poll until the server reports `expected` sessions (it ends them asynchronously).

    The server process is external: there is no event to await, so this polls
    with a 10 s deadline and returns the last count seen.
    """
    deadline = time.monotonic() + 10
    while True:
        count = await backend_count(dsn, application_name)
        if count == expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.02)
