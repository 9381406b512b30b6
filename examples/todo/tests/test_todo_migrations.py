"""Schema migrations: each applied once, in order, also when replicas run them at once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest
from todo_support import database_at, drop_database

from scalepy.errors import BackendError
from todo.app import create_app
from todo.schema import migrate, migrations
from todo.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def fresh_url(database_url: str) -> AsyncIterator[str]:
    """The URL of a database that does not exist yet (dropped after the test)."""
    url = database_at(database_url, f"todo_fresh_{uuid.uuid4().hex[:12]}")
    yield url
    await drop_database(url)


async def applied(url: str) -> list[tuple[int, str]]:
    """The migrations recorded in the database."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
    finally:
        await connection.close()
    return [(row["version"], row["name"]) for row in rows]


async def migrate_process(env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start `python -m todo migrate`, its output captured."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "todo", "migrate",
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_the_migrations_are_numbered_in_order() -> None:
    """The package ships its SQL files, numbered 1, 2, ... without gaps."""
    versions = [migration.version for migration in migrations()]
    assert list(range(1, len(versions) + 1)) == versions


async def test_migrate_creates_the_database_and_is_idempotent(fresh_url: str) -> None:
    """The first run creates the database and applies everything; the next runs nothing."""
    everything = [(migration.version, migration.name) for migration in migrations()]
    assert [version for version, _ in everything] == await migrate(fresh_url)
    assert [] == await migrate(fresh_url)
    assert everything == await applied(fresh_url)


async def test_replicas_migrating_at_once_apply_each_migration_once(fresh_url: str) -> None:
    """Five `python -m todo migrate` processes started together on a missing database.

    All succeed; exactly one applies the migrations, the others find them done.
    """
    env = {**os.environ, "TODO_DATABASE_URL": fresh_url}
    processes = [await migrate_process(env) for _ in range(5)]
    results = [await process.communicate() for process in processes]
    assert [0] * 5 == [process.returncode for process in processes], results
    outputs = sorted(out.decode().strip() for out, _ in results)
    versions = [migration.version for migration in migrations()]
    assert [f"applied {versions}"] + ["the schema is up to date"] * 4 == outputs
    assert versions == [version for version, _ in await applied(fresh_url)]


async def test_the_app_migrates_at_startup_in_dev(fresh_url: str, redis_url: str) -> None:
    """In development the app's startup migrates a database that has no schema yet."""
    settings = Settings(database_url=fresh_url, redis_url=redis_url, namespace=uuid.uuid4().hex)
    # In prod nothing creates the database: the pools cannot open, the app does not start.
    app = create_app(dataclasses.replace(settings, env="prod", jwt_secret="s" * 32))
    with pytest.raises(BackendError, match="todo_fresh_"):
        async with app.router.lifespan_context(app):
            pass
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert [m.version for m in migrations()] == [v for v, _ in await applied(fresh_url)]
