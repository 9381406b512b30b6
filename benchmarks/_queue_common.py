"""What every library's side of the queue benchmark shares: the adapter contract and the counter.

Imports only the standard library and redis-py, so that it also runs in the peers' own venvs.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from redis.asyncio import Redis

FLUSH_EVERY = 0.005  # seconds between two INCRBY of the completion counter


class Producer(Protocol):
    """The enqueueing side of one library, connected to one queue."""

    async def enqueue(self) -> object:
        """Enqueue one no-op job."""

    async def enqueue_batch(self, size: int) -> object:
        """Enqueue `size` no-op jobs through the library's bulk path."""

    async def aclose(self) -> None:
        """Close the connections."""


class Adapter(Protocol):
    """One library (or one configuration of it) as the benchmark drives it."""

    async def producer(self, url: str, name: str) -> Producer:
        """Return a connected producer for queue `name`."""

    async def work(self, url: str, name: str, concurrency: int) -> None:
        """Run one worker process's worker on queue `name` until SIGTERM or cancellation."""


class Completions:
    """Counts the no-op jobs run in this process and adds them to a Redis key every 5 ms.

    Every library's no-op job calls `bump()`, so counting costs the same everywhere and
    next to nothing (one INCRBY per 5 ms, not one round trip per job).
    """

    def __init__(self) -> None:
        self._pending = 0
        self._redis: Redis | None = None
        self._key = ""
        self._flusher: asyncio.Task[None] | None = None

    def bump(self) -> None:
        """Count one finished job."""
        self._pending += 1

    async def start(self, url: str, keys: str) -> None:
        """Connect, announce this process on `{keys}:ready`, count into `{keys}:done`."""
        self._redis = Redis.from_url(url)
        self._key = f"{keys}:done"
        await self._redis.incr(f"{keys}:ready")
        self._flusher = asyncio.create_task(self._flush_forever())

    async def aclose(self) -> None:
        """Stop flushing, send what is left and disconnect."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._redis is not None:
            await self._flush()
            await self._redis.aclose()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self._flush()

    async def _flush(self) -> None:
        if self._pending and self._redis is not None:
            count, self._pending = self._pending, 0
            await self._redis.incrby(self._key, count)


completions = Completions()
"""The counter of this process; the worker agent starts it before the library's worker."""
