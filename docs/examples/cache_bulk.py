"""Bulk loads: cached_many asks the data source only for the ids that are not cached."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from scalepy.cache import Cache

if TYPE_CHECKING:
    from collections.abc import Mapping

cache = Cache("memory://", namespace="docs-bulk")
asked: list[list[int]] = []


@cache.cached_many(ttl=60, key=lambda user_id: f"user:{user_id}")
async def load_users(user_ids: list[int]) -> Mapping[int, str]:
    """One query for many ids (WHERE id = ANY($1)); unknown ids are left out."""
    asked.append(user_ids)
    return {user_id: f"user {user_id}" for user_id in user_ids if user_id < 100}


async def main() -> None:
    """Load 1-3, then 2-4: the second call asks only for 4; unknown ids come back as None."""
    assert await load_users([1, 2, 3]) == {1: "user 1", 2: "user 2", 3: "user 3"}
    assert await load_users([2, 3, 4, 404]) == {2: "user 2", 3: "user 3", 4: "user 4", 404: None}
    assert asked == [[1, 2, 3], [4, 404]]

    # Each id is an entry of its own: the single-key API sees it, and can drop it.
    assert await cache.get("user:4") == "user 4"
    await load_users.invalidate([4])
    await load_users([4, 404])  # 404 is cached as None (negative_ttl defaults to ttl)
    assert asked[-1] == [4]
    await cache.aclose()


if __name__ == "__main__":
    asyncio.run(main())
