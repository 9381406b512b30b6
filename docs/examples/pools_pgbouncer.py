"""PgBouncer transaction pooling: no statement cache and no session reset; state in transactions."""

from __future__ import annotations

import asyncio

from scalepy.pools import PoolManager, PoolOptions

# Point this at PgBouncer (pool_mode = transaction); the local PostgreSQL shows the settings.
DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PREPARED = "SELECT count(*) FROM pg_prepared_statements"


async def main() -> None:
    """Queries with arguments work; nothing is prepared for later; SET LOCAL scopes settings."""
    pools = PoolManager(postgres=DATABASE_URL, options=PoolOptions(pgbouncer=True))
    async with pools, pools.postgres.acquire() as connection:
        assert await connection.fetchval("SELECT $1::int + 1", 41) == 42
        assert await connection.fetchval(PREPARED) == 0  # no statement cached by name

        # Behind PgBouncer each transaction may run on another server connection, so
        # session state belongs inside a transaction, where SET LOCAL keeps it.
        async with connection.transaction():
            await connection.execute("SET LOCAL statement_timeout = '5s'")
            assert await connection.fetchval("SHOW statement_timeout") == "5s"
        assert await connection.fetchval("SHOW statement_timeout") == "0"


if __name__ == "__main__":
    asyncio.run(main())
