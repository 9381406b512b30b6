"""Endpoints and JSON answers without Starlette's per-call wrapping, for the hot path.

```python
Route("/todos/{todo_id:int}", MethodEndpoint({"GET": get_todo, "PATCH": patch_todo}),
      methods=["GET", "PATCH"], name="todo")

async def get_todo(request: Request) -> ASGIApp:
    return JsonReply(msgspec.json.encode(todo))
```

A plain function given to `Route` is wrapped by Starlette's `request_response`:
per call a second `Request`, a second exception-handling layer inside the
`ExceptionMiddleware`'s and a `send` wrapper per message; then `Response` builds
its headers from a dict. On a cached read that was a fifth of the app's own work.
`MethodEndpoint` is an ASGI app, so `Route` calls it as it is: an exception a
handler raises goes up to the app's `ExceptionMiddleware`, whose handlers answer
it exactly as before (they do not use the request's body or state). `JsonReply`
sends the bytes and headers `Response` would, built once: a reply may be kept and
sent again (it never changes after it is made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ("JSON_MEDIA_TYPE", "JsonReply", "MethodEndpoint")

JSON_MEDIA_TYPE = "application/json"
_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())


class MethodEndpoint:
    """An ASGI endpoint serving each method with its handler, HEAD as GET.

    Args:
        handlers: A handler per method: given the request, it returns the response
            (any ASGI app: a `JsonReply`, a Starlette `Response`) or raises.
    """

    __slots__ = ("_handlers",)

    def __init__(self, handlers: Mapping[str, Callable[[Request], Awaitable[ASGIApp]]]) -> None:
        self._handlers = dict(handlers)
        if "GET" in self._handlers:
            self._handlers.setdefault("HEAD", self._handlers["GET"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the request (`Route` let only the handlers' methods through)."""
        response = await self._handlers[scope["method"]](Request(scope, receive, send))
        await response(scope, receive, send)


class JsonReply:
    """An encoded JSON body as a response: what Starlette's `Response` sends, precomputed.

    Args:
        body: The encoded JSON.
        status: The HTTP status.
        headers: Headers before `Content-Length` and `Content-Type`, as Starlette
            orders them (`Location`, `Link`), names in lowercase.
    """

    __slots__ = ("_headers", "_status", "body")

    def __init__(
        self, body: bytes, status: int = 200, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        self.body = body
        self._status = status
        self._headers = (*headers, (b"content-length", str(len(body)).encode()), _CONTENT_TYPE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response: a fresh header list each time, as middleware may extend it."""
        await send(
            {"type": "http.response.start", "status": self._status, "headers": [*self._headers]}
        )
        await send({"type": "http.response.body", "body": self.body})
