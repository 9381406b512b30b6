"""`Connection: close` on every response while the replica drains, as pure ASGI.

```python
Middleware(CloseWhileDrainingMiddleware, draining=lambda: health.draining)
```

A proxy keeps idle keep-alive connections to each replica and may write its next
request on one at the instant the replica, stopping, closes it: nginx never passes
such a POST or PATCH on to another replica (it cannot know whether it was acted on),
the client gets a 502. Once the replica drains, each response tells the proxy to
close that connection instead of keeping it: the replica then stops with few idle
connections left open to it, and the proxy reaches it only through new connects,
which fail cleanly (refused, nothing sent) once it is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("CLOSE", "CloseWhileDrainingMiddleware")

CLOSE = (b"connection", b"close")
"""The header that tells a proxy to close the connection after this response."""


class CloseWhileDrainingMiddleware:
    """Add `Connection: close` to every HTTP response while `draining()` is true.

    Args:
        app: The ASGI app to wrap.
        draining: Whether the replica drains now (`Health.draining`, read per response).
    """

    def __init__(self, app: ASGIApp, *, draining: Callable[[], bool]) -> None:
        self.app = app
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; its response closes the connection if the replica drains."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self._draining():
                message["headers"] = [*message.get("headers", ()), CLOSE]
            await send(message)

        await self.app(scope, receive, send_closing)
