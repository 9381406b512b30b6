"""`async with` for every scalepy object that holds a resource.

`AsyncCloseable` closes on leaving the block; `AsyncResource` also opens on entering it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("AsyncCloseable", "AsyncResource")


class AsyncCloseable:
    """Gives a class with `aclose()` the async context manager protocol."""

    __slots__ = ()

    async def aclose(self) -> None:
        """Release what the object holds; subclasses implement it."""
        raise NotImplementedError

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
    """An `AsyncCloseable` with an `open()` that `async with` runs on entering."""

    __slots__ = ()

    async def open(self) -> None:
        """Acquire what the object holds (connections, tasks); subclasses implement it."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self
