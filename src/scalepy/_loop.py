"""State bound to one event loop: made in the loop that uses it, released at that loop's end.

Connections, timers, futures and background tasks belong to the event loop that
made them; used from another loop they never complete. A module-level object
outlives loops (a second `asyncio.run()`, a test framework's loop per test, a
`TestClient` used without `with`), so it keeps such state in a `PerLoop`: asked
from another loop, the `PerLoop` makes the state afresh for that loop.

The old loop's state is released on its own loop, never awaited from the new one:

* The usual runners (`asyncio.run`, `asyncio.Runner`, anyio, pytest-asyncio) cancel
  every task before closing their loop. A small keeper task per value waits for
  that cancellation, lets the loop's other cancelled tasks unwind (they may still
  use the value in a `finally`), then releases the value while its loop still runs,
  so its connections close cleanly.
* A loop still open when another loop takes over (one running in another thread)
  is asked, thread-safely, to cancel the keeper; the release runs there.
* A loop closed without cancelling its tasks leaves its state unreleased: it is
  dropped, and the garbage collector closes its sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ("PerLoop", "cancel_and_wait", "started_here")

T = TypeVar("T")


class _Kept(Generic[T]):
    """One loop's value and the task that keeps it until that loop shuts down."""

    __slots__ = ("keeper", "loop", "released", "value")

    def __init__(self, value: T, loop: asyncio.AbstractEventLoop) -> None:
        self.value = value
        self.loop = loop
        self.released = False
        self.keeper: asyncio.Task[None] | None = None


# Keepers never wait for each other (see PerLoop._keep).
_KEEPERS: weakref.WeakSet[asyncio.Task[None]] = weakref.WeakSet()


class PerLoop(Generic[T]):
    """One `T` per event loop; see the module docstring.

    Args:
        make: Makes the value, called in the loop that will use it.
        release: Releases a value, awaited in the loop that made it: when that loop
            shuts down, when another loop takes over, or on `aclose()`.
        name: Names the keeper task, e.g. `"scalepy.redis.connections"`.
    """

    __slots__ = ("_kept", "_make", "_name", "_release")

    def __init__(
        self, make: Callable[[], T], release: Callable[[T], Awaitable[None]], *, name: str
    ) -> None:
        self._make = make
        self._release = release
        self._name = name
        self._kept: _Kept[T] | None = None

    def get(self, loop: asyncio.AbstractEventLoop) -> T:
        """Return the value for `loop`, the running loop, making it on first use there."""
        kept = self._kept
        if kept is not None and kept.loop is loop:
            return kept.value
        if kept is not None:
            _leave(kept)
        kept = self._kept = _Kept(self._make(), loop)
        kept.keeper = loop.create_task(self._keep(kept), name=self._name)
        _KEEPERS.add(kept.keeper)
        return kept.value

    def bound_here(self) -> bool:
        """Whether the value belongs to the running loop (False outside any loop)."""
        return self._kept is not None and self._kept.loop is _running_loop()

    async def aclose(self) -> None:
        """Release the value now if it belongs to the running loop; else let its loop do it."""
        kept, self._kept = self._kept, None
        if kept is None:
            return
        if kept.loop is not _running_loop():
            _leave(kept)
            return
        kept.released = True
        if kept.keeper is not None:
            kept.keeper.cancel()  # not awaited: it may be waiting for this very task
        await self._release(kept.value)

    async def _keep(self, kept: _Kept[T]) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            # The loop's runner cancels every task at once: let the others unwind
            # first (they may still use the value), then release it.
            current = asyncio.current_task()
            unwinding = [
                task
                for task in asyncio.all_tasks()
                if task is not current and task.cancelling() and task not in _KEEPERS
            ]
            if unwinding:
                await asyncio.wait(unwinding)
            if not kept.released:
                kept.released = True
                await self._release(kept.value)


def _leave(kept: _Kept[Any]) -> None:
    """Have an earlier loop release its value, from whichever loop this runs in."""
    keeper, loop = kept.keeper, kept.loop
    if keeper is not None and not loop.is_closed():
        loop.call_soon_threadsafe(keeper.cancel)


def started_here(task: asyncio.Task[Any] | None) -> bool:
    """Whether `task` was started in the running loop (False outside any loop).

    A background task of an earlier loop (ended by that loop's runner, or stranded
    in a closed loop) was not: its owner starts a new one in this loop.
    """
    return task is not None and task.get_loop() is _running_loop()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it to end, on its own loop only.

    A task of an earlier loop is never awaited from this one (that would fail, or
    hang): if its loop is still open (in another thread) it is cancelled there.
    """
    if task is None:
        return
    if started_here(task):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return
    loop = task.get_loop()
    if not task.done() and not loop.is_closed():
        loop.call_soon_threadsafe(task.cancel)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
