"""Fixtures of the pool tests: a private PostgreSQL server and stand-in replica databases."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import asyncpg
import pytest

from tests.pools.helpers import unique_name
from tests.support.postgres_server import PostgresServer

if TYPE_CHECKING:
    from collections.abc import Iterator

REPLICA_DATABASES = ("scalepy_pools_replica_a", "scalepy_pools_replica_b")


@pytest.fixture(scope="session")
def _private_postgres_session() -> Iterator[PostgresServer]:
    """One private server for the session: initdb is slow, restarts are fast."""
    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def private_postgres(_private_postgres_session: PostgresServer) -> Iterator[PostgresServer]:
    """The private server, running and not paused when the test starts and after it ends."""
    server = _private_postgres_session
    server.resume()
    if not server.running:
        server.start()
    yield server
    server.resume()
    if not server.running:
        server.start()


@pytest.fixture
def app_name() -> str:
    """An application_name of the test's own, to count its sessions in pg_stat_activity."""
    return unique_name()


@pytest.fixture(scope="session")
def replica_dsns(postgres_dsn: str) -> tuple[str, str]:
    """Two databases on the shared server standing in as read replicas."""

    async def create() -> None:
        connection = await asyncpg.connect(postgres_dsn)
        try:
            for name in REPLICA_DATABASES:
                exists = await connection.fetchval(
                    "SELECT 1 FROM pg_database WHERE datname = $1", name
                )
                if not exists:  # another session may be faster: that is fine
                    with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                        await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    base = postgres_dsn.rsplit("/", 1)[0]
    return (f"{base}/{REPLICA_DATABASES[0]}", f"{base}/{REPLICA_DATABASES[1]}")
