"""The Redis client on uvloop, the event loop uvicorn picks when it is installed."""

from __future__ import annotations

import uvloop

from scalepy.backends.redis import RedisClient


def test_the_client_connects_and_gets_replies_on_uvloop(redis_url: str) -> None:
    """The client works on transports that are not asyncio.Transport subclasses (uvloop's).

    (A check that the transport was one failed every connection: no reply ever came.)
    """

    async def main() -> list[object]:
        async with RedisClient.from_url(redis_url) as client:
            return [await client.execute("PING"), await client.execute("ECHO", "uv")]

    assert [b"PONG", b"uv"] == uvloop.run(main())
