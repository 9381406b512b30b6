"""RedisClient failure behaviour: fail fast when Redis is gone, never wait past `timeout`."""

from __future__ import annotations

import asyncio
import socket
import time

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendTimeout, BackendUnavailable


def unused_port() -> int:
    """Return a local TCP port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def main() -> None:
    """Show BackendUnavailable for a missing server and BackendTimeout for a silent one."""
    # Nobody listens: every caller gets BackendUnavailable (a ConnectionError) at once.
    async with RedisClient.from_url(f"redis://127.0.0.1:{unused_port()}/0") as redis:
        try:
            await redis.execute("GET", "anything")
        except ConnectionError as exc:
            assert isinstance(exc, BackendUnavailable)
            assert exc.backend == str(redis.config)
        else:
            raise AssertionError("a missing server must raise BackendUnavailable")

    # A listening socket that is never read stands in for a frozen Redis: the
    # connection opens, no reply ever comes. Every caller gets BackendTimeout (a
    # TimeoutError) after `timeout` seconds, not later.
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen()
        port = frozen.getsockname()[1]
        async with RedisClient.from_url(f"redis://127.0.0.1:{port}/0?timeout=0.2") as redis:
            started = time.monotonic()
            results = await asyncio.gather(
                *(redis.execute("GET", f"key:{i}") for i in range(10)), return_exceptions=True
            )
            elapsed = time.monotonic() - started
            assert all(isinstance(result, BackendTimeout) for result in results)
            assert 0.2 <= elapsed < 1.0, elapsed  # one shared deadline, not ten in a row


if __name__ == "__main__":
    asyncio.run(main())
