"""Invalidate after a database write: tags keep every cached view of a row in step."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg

from scalepy.cache import Cache

DATABASE_URL = os.environ.get(
    "SCALEPY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Cache two views of a table, write to it, then invalidate what the write changed."""
    db = await asyncpg.connect(DATABASE_URL)
    await db.execute(
        "CREATE TEMP TABLE todos (id int PRIMARY KEY, title text NOT NULL, done bool NOT NULL)"
    )
    await db.execute("INSERT INTO todos VALUES (1, 'write docs', false), (2, 'ship', false)")
    queries = 0

    # max_ttl bounds every entry's lifetime; tag versions are kept twice as long.
    cache = Cache(REDIS_URL, namespace=f"docs-todo-{uuid.uuid4().hex}", max_ttl=3600)

    @cache.cached(ttl=300, tags=["todo:{todo_id}"])
    async def get_todo(todo_id: int) -> dict[str, Any] | None:
        nonlocal queries
        queries += 1
        row = await db.fetchrow("SELECT id, title, done FROM todos WHERE id = $1", todo_id)
        return None if row is None else dict(row)

    @cache.cached(ttl=300, tags=["todos"])
    async def open_todos() -> list[int]:
        nonlocal queries
        queries += 1
        return [row["id"] for row in await db.fetch("SELECT id FROM todos WHERE NOT done")]

    async def complete(todo_id: int) -> None:
        """The write path: commit first, then invalidate what the write changed."""
        async with db.transaction():
            await db.execute("UPDATE todos SET done = true WHERE id = $1", todo_id)
        # After the commit, never before: a reader between the two would cache the
        # old row again. One call invalidates every entry carrying these tags, in
        # every process (O(1) per tag, however many entries carry it).
        await cache.invalidate_tags(f"todo:{todo_id}", "todos")

    async with cache:
        assert await get_todo(1) == {"id": 1, "title": "write docs", "done": False}
        assert await open_todos() == [1, 2]
        for _ in range(3):  # hits: the database is not asked again
            await get_todo(1)
            await open_todos()
        assert queries == 2

        await complete(1)
        assert await get_todo(1) == {"id": 1, "title": "write docs", "done": True}
        assert await open_todos() == [2]
        assert await get_todo(2) == {"id": 2, "title": "ship", "done": False}  # its own tag
        assert queries == 5

        # One entry can also be dropped by its arguments (the same key the call uses).
        await db.execute("UPDATE todos SET title = 'ship it' WHERE id = 2")
        await get_todo.invalidate(2)
        assert (await get_todo(2) or {})["title"] == "ship it"
        await cache.clear()  # tidy up: every entry and tag version of the namespace
    await db.close()


if __name__ == "__main__":
    asyncio.run(main())
