"""RedisClient: raw RESP2 replies, automatic pipelining and typed errors, on a real Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

from scalepy.backends import KeySpace
from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendCommandError

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def main() -> None:
    """Run commands one by one and concurrently, then clean up."""
    space = KeySpace("scalepy:docs:client")
    greeting, hits, items = space.keys(uuid.uuid4().hex, "greeting", "hits", "items")

    async with RedisClient.from_url(REDIS_URL) as redis:
        try:
            # Replies are raw RESP2 values: status replies and strings are bytes.
            assert await redis.execute("SET", greeting, "hello", "EX", 60) == b"OK"
            assert await redis.execute("GET", greeting) == b"hello"
            assert await redis.execute("INCRBY", hits, 5) == 5  # integers are int
            assert await redis.execute("RPUSH", items, "a", "b") == 2
            assert await redis.execute("LRANGE", items, 0, -1) == [b"a", b"b"]
            assert await redis.execute("GET", f"{greeting}:missing") is None
            assert await redis.ping()

            # A lone caller's command is written at once (the calls above each were);
            # commands issued in one event-loop tick by many callers travel as one
            # pipeline, and each caller still gets its own reply. Here the first INCR
            # finds the connection idle and goes at once, the other 99 go together.
            before = redis.statistics().pipeline
            replies = await asyncio.gather(*(redis.execute("INCR", hits) for _ in range(100)))
            after = redis.statistics().pipeline
            assert sorted(replies) == list(range(6, 106))
            assert after.commands - before.commands == 100
            assert after.batches - before.batches == 2
            assert after.waiting == 0

            # A command the server rejects fails alone, as BackendCommandError.
            results = await asyncio.gather(
                redis.execute("GET", greeting),
                redis.execute("LPUSH", greeting, "x"),  # wrong type
                redis.execute("GET", hits),
                return_exceptions=True,
            )
            assert results[0] == b"hello"
            assert isinstance(results[1], BackendCommandError)
            assert "WRONGTYPE" in results[1].message
            assert results[2] == b"105"
        finally:
            await redis.execute("DEL", greeting, hits, items)


if __name__ == "__main__":
    asyncio.run(main())
