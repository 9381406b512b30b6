"""Refuse request bodies over a size limit with `413`, before reading them, as pure ASGI.

```python
Middleware(BodySizeLimitMiddleware, max_bytes=64 * 1024)
```

- A `Content-Length` over the limit is answered at once: the app never runs and
  not one byte of the body is read.
- A body of unknown length (`Transfer-Encoding: chunked`, or HTTP/2) is counted
  as the app reads it; the chunk that crosses the limit is the last one ever read, and the
  read raises `BodyTooLarge` (a 413 `Problem`), answered here or by
  `problem_handlers()`.
- A `Content-Length` within the limit is not counted again: the server (uvicorn,
  nginx in front) holds the body to its declared length. A request with neither
  header has no body and passes untouched (most GETs: no cost).

The 413 says `Connection: close`, so the server drops the unread rest of the body
instead of reading it to reach the next request.

Starlette's own `max_body_size` checks `Content-Length` only when the app reads
the body or starts its response (a handler that ignores the body runs first), and
answers in plain text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from todo.http._asgi import TrackedSend
from todo.http.problem import Problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("BodySizeLimitMiddleware", "BodyTooLarge", "body_framing", "counting_receive")


class BodyTooLarge(Problem):
    """A request body is over the limit: answered `413` with `Connection: close`.

    Attributes:
        max_bytes: The limit.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            f"The request body is larger than {max_bytes} bytes.",
            headers={"Connection": "close"},
            max_bytes=max_bytes,
        )
        self.max_bytes = max_bytes


class BodySizeLimitMiddleware:
    """Answer `413` problem+json for a request body over `max_bytes`.

    Args:
        app: The ASGI app to wrap.
        max_bytes: The largest body accepted, in bytes.

    Raises:
        ValueError: `max_bytes` is negative.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes is a size in bytes >= 0, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a declared-too-large body, or serve the request with its body counted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, streamed = body_framing(scope)
        if declared is not None and declared > self.max_bytes:
            await BodyTooLarge(self.max_bytes).response()(scope, receive, send)
        elif declared is None and streamed:
            await self._counted(scope, receive, send)
        else:  # within its declared length, or no body at all
            await self.app(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a body of unknown length, refusing it once it crosses the limit."""
        tracked = TrackedSend(send)
        try:
            await self.app(scope, counting_receive(receive, self.max_bytes), tracked)
        except BodyTooLarge as exc:
            if tracked.started:
                raise
            await exc.response()(scope, receive, send)


def counting_receive(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising `BodyTooLarge` once the body read crosses `max_bytes`."""
    received = 0

    async def receive_counted() -> Message:
        nonlocal received
        if received > max_bytes:  # never read past the chunk that crossed it
            raise BodyTooLarge(max_bytes)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLarge(max_bytes)
        return message

    return receive_counted


def body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared body length, and whether a body may come without one.

    In HTTP/1.x a body without `Content-Length` is chunked (RFC 9112 §6.3), so a
    request with neither header has none; in HTTP/2 any request may stream one.
    """
    declared = None
    streamed = scope.get("http_version") not in ("1.1", "1.0")
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:  # the server refuses it; if not, count the body instead
                streamed = True
        elif name == b"transfer-encoding":
            streamed = True
    return declared, streamed
