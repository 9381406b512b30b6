"""`ResultWaiter`: wakes `Job.result()` callers when the store announces their job settled.

The store's settled feed (Redis: the queue's pub/sub channel, which `ack.lua`
publishes on; memory: a callback) hands over the ids of settled jobs. One feed
per `Queue`, started by the first `result()` call, sets the waiting callers'
events. A message lost while a subscription reconnects costs at most `recheck`
seconds: each caller re-reads its job that often anyway, and only that on a
store that announces nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from scalepy._lifecycle import AsyncCloseable
from scalepy.queue._job import JobStatus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.queue._store import SettledFeed, StoredJob

__all__ = ("ResultWaiter",)


class ResultWaiter(AsyncCloseable):
    """Lets callers wait for jobs to settle, on one shared feed.

    Args:
        settled_feed: Makes the store's feed of settled job ids; `None` for a
            store that announces none.
        recheck: Seconds between re-reads of a job while waiting.
    """

    __slots__ = ("_feed", "_make_feed", "_recheck", "_waiting")

    def __init__(
        self,
        settled_feed: Callable[[Callable[[list[str]], None]], SettledFeed] | None,
        *,
        recheck: float,
    ) -> None:
        self._make_feed = settled_feed
        self._recheck = recheck
        self._feed: SettledFeed | None = None
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
            await self._listening()
            while True:
                settled.clear()  # before the read: an announcement after it still wakes us
                stored = await read()
                if JobStatus(stored.state).finished:
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
        """Stop listening; does not close the store."""
        if self._feed is not None:
            await self._feed.aclose()

    async def _listening(self) -> None:
        if self._make_feed is None:
            return
        if self._feed is None:
            self._feed = self._make_feed(self._on_settled)
        await self._feed.start()

    def _on_settled(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            for event in self._waiting.get(job_id, ()):
                event.set()
