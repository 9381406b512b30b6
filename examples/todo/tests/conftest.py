"""Fixtures of the Todo API's tests: real PostgreSQL and Redis, isolated per test.

The session gets a database of its own (created and migrated by `migrate()`, dropped
at the end); each test gets empty tables and a Redis namespace no other test uses
(the cache, the rate limiter, the breaker and the queue all live under it), whose
keys are deleted afterwards. Addresses: SCALEPY_TEST_POSTGRES_DSN and
SCALEPY_TEST_REDIS_URL, as for the rest of the suite.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from todo_support import database_at, drop_database

from scalepy.backends.redis import RedisClient
from todo.app import create_app
from todo.schema import migrate
from todo.settings import Rate, Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from starlette.applications import Starlette


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis server."""
    return os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this session's own, with the schema."""
    server = os.environ.get(
        "SCALEPY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
    )
    url = database_at(server, f"todo_test_{uuid.uuid4().hex[:12]}")
    asyncio.run(migrate(url))
    yield url
    asyncio.run(drop_database(url))


@pytest.fixture
async def settings(database_url: str, redis_url: str) -> AsyncIterator[Settings]:
    """Settings for one test: empty tables, a fresh Redis namespace, generous rate limits."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "TRUNCATE todos, notifications, notification_outbox RESTART IDENTITY"
        )
    finally:
        await connection.close()
    namespace = f"todo-test-{uuid.uuid4().hex[:12]}"
    yield Settings(
        database_url=database_url,
        redis_url=redis_url,
        namespace=namespace,
        rate_limit=Rate(limit=10_000, period=1.0),
        write_rate_limit=Rate(limit=10_000, period=1.0),
    )
    async with RedisClient.from_url(redis_url) as redis:
        async for key in redis.redis.scan_iter(match=f"*{namespace}*", count=1000):
            await redis.execute("DEL", key)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app, inside its lifespan (resources open), as a server would run it."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
