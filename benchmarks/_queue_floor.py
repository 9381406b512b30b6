"""The floor of the queue benchmark's enqueue columns: bare PING round trips, no queue at all.

A caller that awaits its enqueue waits at least one round trip to Redis; this row
measures that round trip on the same Redis, in the same harness, with the least
Python possible (an `asyncio.Protocol` writing `PING` and waiting for `+PONG`): no
client library, no command encoding, no script. No enqueue that is acknowledged by
Redis before it returns can be faster than this row in the same column; the bulk
column pipelines `size` PINGs in one write.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

_PING = b"*1\r\n$4\r\nPING\r\n"
_PONG = b"+PONG\r\n"


class _PingProtocol(asyncio.Protocol):
    """Counts `+PONG` replies against futures waiting in send order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[None], int]] = deque()  # (future, replies)
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        replies = len(self._buffer) // len(_PONG)  # every reply is the same 7 bytes
        self._buffer = self._buffer[replies * len(_PONG) :]
        while replies and self.waiting:
            future, wanted = self.waiting[0]
            taken = min(replies, wanted)
            replies -= taken
            if taken == wanted:
                self.waiting.popleft()
                future.set_result(None)
            else:
                self.waiting[0] = (future, wanted - taken)


class FloorProducer:
    """Sends PINGs where the other producers enqueue jobs."""

    def __init__(self, protocol: _PingProtocol) -> None:
        self._protocol = protocol

    async def enqueue(self) -> object:
        """One PING round trip."""
        return await self.enqueue_batch(1)

    async def enqueue_batch(self, size: int) -> object:
        """`size` PINGs in one write, awaited together."""
        protocol = self._protocol
        assert protocol.transport is not None
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, size))
        protocol.transport.write(_PING * size)
        return await future

    async def aclose(self) -> None:
        """Close the connection."""
        if self._protocol.transport is not None:
            self._protocol.transport.close()


class FloorAdapter:
    """The round-trip floor: a producer only."""

    async def producer(self, url: str, name: str) -> FloorProducer:
        """Connect to the Redis of `url` (`name` is unused: PING touches no key)."""
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            _PingProtocol, parts.hostname or "127.0.0.1", parts.port or 6379
        )
        return FloorProducer(protocol)

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Never called: the floor has no worker."""
        raise SystemExit("the floor row only enqueues")
