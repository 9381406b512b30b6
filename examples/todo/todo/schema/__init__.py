"""The database schema: versioned SQL migrations, applied once each, safe to run at once.

The files `NNNN_name.sql` beside this module are the migrations, applied in order of
their number. `migrate()` creates the database if it is missing, takes a PostgreSQL
advisory lock (so several replicas starting together, as `scripts/demo.sh` starts
them, migrate one after the other instead of racing), then applies each migration
not yet recorded in `schema_migrations`, each in a transaction together with its
record: a migration is either applied and recorded, or neither. Running it again
does nothing. `python -m todo migrate` runs it once (a deploy's one-shot job); in
development the app runs it at startup.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

__all__ = ("Migration", "migrate", "migrations")

_logger = logging.getLogger("todo.schema")

LOCK_KEY = 0x70D0_5C4E_0A  # pg_advisory_lock key: any constant no other code uses
_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_CONNECT_TIMEOUT = 10.0
_LOCK_TIMEOUT = "60s"  # another replica migrating for longer than this is stuck


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change."""

    version: int
    """Its number: migrations apply in this order."""
    name: str
    """What it does, from the file name."""
    sql: str
    """The statements."""


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    found = []
    for entry in resources.files(__package__).iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda migration: migration.version)


# --8<-- [start:migrate]
async def migrate(database_url: str) -> list[int]:
    """Bring the database to the latest schema; safe to run concurrently and repeatedly.

    Args:
        database_url: The service's database; it is created if it does not exist.

    Returns:
        The versions this call applied (empty when the schema was up to date).
    """
    await _create_database(database_url)
    connection = await asyncpg.connect(database_url, timeout=_CONNECT_TIMEOUT)
    try:
        await connection.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
        await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            return await _apply(connection)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await connection.close()


async def _apply(connection: asyncpg.Connection) -> list[int]:
    """Apply what is missing; the caller holds the lock."""
    await connection.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer     PRIMARY KEY,
               name       text        NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now()
           )"""
    )
    rows = await connection.fetch("SELECT version FROM schema_migrations")
    done = {row["version"] for row in rows}
    applied = []
    for migration in migrations():
        if migration.version in done:
            continue
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        _logger.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    return applied


# --8<-- [end:migrate]


async def _create_database(database_url: str) -> None:
    """Create the URL's database unless it exists (connecting to `postgres` to do so)."""
    parts = urlsplit(database_url)
    name = unquote(parts.path.lstrip("/"))
    if not name or name == "postgres":
        return
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(maintenance, timeout=_CONNECT_TIMEOUT)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await connection.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return  # another process created it between our check and our CREATE
        _logger.info("created database %s", name)
    finally:
        await connection.close()
