"""One lifecycle for every scalepy object that holds a resource.

`async with obj:` / `await obj.open()` / `await obj.aclose()`. Closing is
idempotent (a second call returns at once), concurrent calls share one close,
and the close is shielded from cancellation: a caller cancelled while it waits
still leaves the object closed. A closed object does not reopen: `open()`
raises `ResourceClosedError` (build a new one). Subclasses implement `_aclose()`
(and `_open()` for an `AsyncResource`); the bookkeeping lives here, once.
"""

from __future__ import annotations

import asyncio
import warnings
from typing import TYPE_CHECKING, NoReturn, Self

from scalepy.errors import ResourceClosedError, UsageError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

__all__ = ("LIFECYCLE_SLOTS", "AsyncCloseable", "AsyncOnly", "AsyncResource", "deprecated")

LIFECYCLE_SLOTS = ("_lifecycle_closing", "_lifecycle_opening")
"""What a subclass with `__slots__` lists for the bookkeeping (the bases have none)."""


class AsyncOnly:
    """An object entered with `async with` only: `with obj:` says so instead of a bare TypeError."""

    __slots__ = ()

    def __enter__(self, *_: object) -> NoReturn:
        raise UsageError(
            f"a {type(self).__name__} is entered with `async with`, not `with` "
            f"(inside an async function)"
        )

    __exit__ = __enter__  # never reached: Python calls __enter__ first, which raises


class AsyncCloseable(AsyncOnly):
    """An object with an idempotent, cancellation-safe `aclose()`, usable in `async with`."""

    # Empty, so a subclass may also derive from another slotted class; see LIFECYCLE_SLOTS.
    __slots__ = ()

    async def aclose(self) -> None:
        """Release what the object holds; again, or concurrently, waits for the one close.

        Shielded from cancellation: if the caller is cancelled, the close goes on.
        """
        await self._close_once(self._aclose)

    async def _aclose(self) -> None:
        """What closing does; subclasses implement it (runs once)."""
        raise NotImplementedError

    @property
    def _lifecycle_closed(self) -> bool:
        """Whether `aclose()` was called (the close may still be running)."""
        return getattr(self, "_lifecycle_closing", None) is not None

    async def _close_once(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run `close()` once, in a task of its own that a cancelled caller leaves running."""
        closing: asyncio.Future[None] | None = getattr(self, "_lifecycle_closing", None)
        if closing is None:
            closing = asyncio.ensure_future(self._before_close(close))
            # A close nobody waits for any more (its callers were cancelled) logs nothing.
            closing.add_done_callback(_retrieve)
            _remember(self, "_lifecycle_closing", closing)
        elif closing.done():
            return
        await asyncio.shield(closing)

    async def _before_close(self, close: Callable[[], Awaitable[None]]) -> None:
        await close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncResource(AsyncCloseable):
    """An `AsyncCloseable` with an idempotent `open()` that `async with` runs on entering.

    Concurrent `open()` calls share one opening; a failed or cancelled opening
    is tried again by the next call, and so is one done in an earlier event loop
    (a module-level object serving several `asyncio.run()`); `aclose()` during an
    opening cancels it.
    """

    __slots__ = ()

    async def open(self) -> None:
        """Acquire what the object holds (connections, tasks); opening twice does nothing.

        Raises:
            ResourceClosedError: The object was closed; it does not reopen.
        """
        await self._open_once(self._open)

    async def _open(self) -> None:
        """What opening does; nothing unless a subclass says otherwise (runs once)."""

    async def _open_once(self, opener: Callable[[], Awaitable[None]]) -> None:
        if self._lifecycle_closed:
            raise ResourceClosedError(type(self).__name__)
        opening: asyncio.Future[None] | None = getattr(self, "_lifecycle_opening", None)
        if opening is None or (opening.done() and _stale(opening)):
            opening = asyncio.ensure_future(opener())
            opening.add_done_callback(_retrieve)
            _remember(self, "_lifecycle_opening", opening)
        await asyncio.shield(opening)

    async def _before_close(self, close: Callable[[], Awaitable[None]]) -> None:
        opening: asyncio.Future[None] | None = getattr(self, "_lifecycle_opening", None)
        if opening is not None and not opening.done():
            opening.cancel()
            await asyncio.wait((opening,))
        await close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self


def _remember(owner: AsyncCloseable, name: str, future: asyncio.Future[None]) -> None:
    # The slot is the subclass's (LIFECYCLE_SLOTS), which mypy cannot see from here.
    setattr(owner, name, future)


def _stale(opening: asyncio.Future[None]) -> bool:
    """Whether a finished opening must run again: it failed, or opened in another loop."""
    failed = opening.cancelled() or opening.exception() is not None
    return failed or opening.get_loop() is not asyncio.get_running_loop()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def deprecated(old: str, new: str) -> None:
    """Warn that the caller of the caller used `old`, a lifecycle verb renamed to `new`."""
    warnings.warn(
        f"{old} is deprecated, use {new} (one lifecycle: open() / aclose())",
        DeprecationWarning,
        stacklevel=3,
    )
