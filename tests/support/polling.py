"""Waiting for a condition that another process, a server's clock or a timer sets.

Such a condition sends no event a test could await, so it is polled, briefly and
with a bound: a test fails with the condition's name instead of hanging.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("WAIT", "eventually")

WAIT = 15.0
"""The longest a condition may take on a loaded CI machine; most take milliseconds."""


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, within: float = WAIT, every: float = 0.01
) -> float:
    """Poll `check` until it holds; return the seconds that took.

    Raises:
        AssertionError: `check` did not hold within `within` seconds.
    """
    started = time.monotonic()
    while True:
        held = check()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"not true within {within} s: {check}")
        await asyncio.sleep(every)
