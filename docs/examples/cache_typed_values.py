"""Cached values keep their type: a hit returns what the function's annotation says."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pydantic

from scalepy.cache import Cache

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclasses.dataclass(frozen=True)
class Todo:
    """A row, as a repository returns it."""

    id: uuid.UUID
    title: str
    created_at: datetime


class Invoice(pydantic.BaseModel):
    """A Pydantic model: encoded and validated by Pydantic itself."""

    number: int
    total: Decimal


async def main() -> None:
    """Cache a list of dataclasses, an optional model and a dict of datetimes; read them back."""
    async with Cache(REDIS_URL, namespace=f"docs-typed-{uuid.uuid4().hex[:8]}") as cache:
        created = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
        todos = [Todo(uuid.uuid4(), "write the report", created)]

        @cache.cached(ttl=60)
        async def list_todos(owner: str) -> list[Todo]:
            return todos

        @cache.cached(ttl=60)
        async def invoice(number: int) -> Invoice | None:
            return Invoice(number=number, total=Decimal("12.50")) if number > 0 else None

        @cache.cached(ttl=60)
        async def last_seen(team: str) -> dict[str, datetime]:
            return {"ada": created}

        assert await list_todos("ada") == todos  # computed, stored
        hit = await list_todos("ada")  # read back from Redis, decoded into list[Todo]
        assert hit == todos
        assert isinstance(hit[0], Todo)
        assert isinstance(hit[0].created_at, datetime)

        assert await invoice(7) == await invoice(7) == Invoice(number=7, total=Decimal("12.50"))
        assert await invoice(0) is None
        assert await last_seen("core") == await last_seen("core") == {"ada": created}
        assert cache.statistics().hits == 3  # one per function: each second call was a hit
        await cache.clear()


if __name__ == "__main__":
    asyncio.run(main())
