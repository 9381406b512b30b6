"""`ResultWaiter`: wakes `Job.result()` callers when the worker announces their job settled.

Workers publish the ids of settled jobs on the queue's channel (`ack.lua`). One
subscription per `Queue`, opened by the first `result()` call, sets the waiting
callers' events. A message lost while the subscription reconnects costs at most
`recheck` seconds: each caller re-reads its job that often anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from scalepy._lifecycle import AsyncCloseable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.backends.redis import RedisClient, Subscription
    from scalepy.queue._store import StoredJob

__all__ = ("ResultWaiter",)

_SETTLED = frozenset(("completed", "dead", "cancelled"))


class ResultWaiter(AsyncCloseable):
    """Lets callers wait for jobs to settle, on one shared subscription.

    Args:
        client: The Redis connection.
        channel: Where settled job ids are published.
        recheck: Seconds between re-reads of a job while waiting.
    """

    __slots__ = ("_channel", "_client", "_recheck", "_subscription", "_waiting")

    def __init__(self, client: RedisClient, channel: str, *, recheck: float = 1.0) -> None:
        self._client = client
        self._channel = channel
        self._recheck = recheck
        self._subscription: Subscription | None = None
        self._waiting: dict[str, list[asyncio.Event]] = {}

    async def wait(
        self, job_id: str, seconds: float | None, read: Callable[[], Awaitable[StoredJob]]
    ) -> StoredJob | None:
        """Re-read the job (`read`) until it settles, waking on each announcement.

        Returns:
            The settled job, or `None` if `seconds` passed first (`None`: no limit).
        """
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        settled = asyncio.Event()
        self._waiting.setdefault(job_id, []).append(settled)
        try:
            await self._subscribed()
            while True:
                settled.clear()  # before the read: an announcement after it still wakes us
                stored = await read()
                if stored.state in _SETTLED:
                    return stored
                wait = (
                    self._recheck
                    if deadline is None
                    else min(self._recheck, deadline - loop.time())
                )
                if wait <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await settled.wait()
        finally:
            events = self._waiting[job_id]
            events.remove(settled)
            if not events:
                del self._waiting[job_id]

    async def aclose(self) -> None:
        """Stop listening; does not close the client."""
        if self._subscription is not None:
            await self._subscription.aclose()

    async def _subscribed(self) -> None:
        if self._subscription is None:
            from scalepy.backends.redis import Subscription

            self._subscription = Subscription(
                self._client, self._channel, self._on_message, sharded=self._client.is_cluster
            )
        await self._subscription.start()

    def _on_message(self, data: bytes) -> None:
        for job_id in data.decode().split():
            for event in self._waiting.get(job_id, ()):
                event.set()
