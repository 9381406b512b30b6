"""`AsyncCloseable`: `async with` for every scalepy object that holds a resource."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("AsyncCloseable",)


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
