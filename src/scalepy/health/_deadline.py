"""Waiting for a task until a deadline on a `Clock`, so tests can move time by hand."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scalepy.clock import Clock

__all__ = ("finished_within",)


async def finished_within(task: asyncio.Future[Any], seconds: float, clock: Clock) -> bool:
    """Wait until `task` is done or `seconds` passed on `clock`.

    The task is neither cancelled nor awaited: the caller decides what happens to a
    late one. Unlike `asyncio.wait_for`, a task that ignores cancellation cannot
    hold the caller past the deadline.

    Returns:
        Whether the task is done.
    """
    if not task.done():
        timer = asyncio.ensure_future(clock.sleep(seconds))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
    return task.done()
