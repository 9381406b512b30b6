"""A first program: connect to Redis by URL, store a value, read it back."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends.redis import RedisClient
from scalepy.serializers import JsonSerializer

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Store a JSON document for a minute and read it back."""
    json = JsonSerializer()
    key = f"scalepy:docs:quickstart:{uuid.uuid4().hex}"
    async with RedisClient.from_url(REDIS_URL) as redis:  # connects on first use
        try:
            await redis.execute("SET", key, json.dumps({"hello": "world"}), "EX", 60)
            assert json.loads(await redis.execute("GET", key)) == {"hello": "world"}
        finally:
            await redis.execute("DEL", key)


if __name__ == "__main__":
    asyncio.run(main())
