"""ASGI plumbing shared by the middleware of this package."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.types import Message, Send

__all__ = ("TrackedSend", "adding_headers")


class TrackedSend:
    """A `send` that remembers whether the response started.

    A middleware that answers an exception the app raised may do so only while
    `started` is false; after that the client already has a status line.
    """

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        """Pass `message` on, noting the response start."""
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


def adding_headers(send: Send, headers: Sequence[tuple[bytes, bytes]]) -> Send:
    """`send`, appending `headers` to the response start.

    The headers go into a new list: a response object may reuse its own.
    """

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return send_with_headers
