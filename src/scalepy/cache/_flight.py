"""Single flight: concurrent callers of one key share the first caller's work.

The first caller (the leader) does the work in its own task; the others join
with a future of their own, so cancelling one follower cancels nobody else. When
the leader itself is cancelled, its followers are told to start over (one of
them becomes the next leader) rather than inherit the cancellation. An
invalidation of the key marks the flight `invalidated`: its value is then not
stored, and new callers start a flight of their own.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ("Abandoned", "Flight")


class Abandoned(Exception):
    """The leader was cancelled before finishing: start over."""


class Flight:
    """The followers of one in-progress lookup."""

    __slots__ = ("_followers", "invalidated")

    def __init__(self) -> None:
        self._followers: list[asyncio.Future[Any]] = []
        self.invalidated = False

    def __len__(self) -> int:
        """Return the number of followers waiting."""
        return len(self._followers)

    def join(self) -> asyncio.Future[Any]:
        """Return a future settled with the leader's result or error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._followers.append(future)
        return future

    def resolve(self, value: Any) -> None:
        """Hand the leader's result to every follower still waiting."""
        for future in self._followers:
            if not future.done():
                future.set_result(value)

    def fail(self, error: BaseException) -> None:
        """Hand the leader's error to every follower; a cancellation makes them start over."""
        for future in self._followers:
            if not future.done():
                if isinstance(error, asyncio.CancelledError):
                    future.set_exception(Abandoned())
                else:
                    future.set_exception(error)
