"""The whole HTTP edge of `todo.http` as one pure-ASGI middleware, for the hot path.

```python
Middleware(
    EdgeMiddleware,
    max_body_bytes=64 * 1024,
    cors_origins=["https://todobackend.com"],
    draining=lambda: health.draining,
    observe=metrics.observe,  # (scope, status, seconds), once per request
)
```

It does what this stack of the package's middleware does, outermost first, with the
same responses, headers (in the same order) and logs:

```python
middleware = [
    Middleware(RequestIdMiddleware),
    Middleware(SecurityHeadersMiddleware),
    Middleware(CloseWhileDrainingMiddleware, draining=draining),
    *filter(None, [cors_middleware(cors_origins)]),
    Middleware(UnhandledErrorMiddleware),
    Middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes),
]
```

Each of those wraps `send` (or `receive`) in a closure of its own and adds a
coroutine to every call: six layers cost a cached read about as much as its route
handler did. Here one `send` wrapper adds every header to the response start, and
the pieces' own functions do the work, so the two stay alike.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from todo.http.body_limit import BodyTooLarge, body_framing, counting_receive
from todo.http.cors import CrossOriginMiddleware, check_origins
from todo.http.draining import CLOSE
from todo.http.errors import answer_unhandled
from todo.http.request_id import enter_request, leave_request
from todo.http.security_headers import SecurityHeaders

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("EdgeMiddleware",)


class EdgeMiddleware:
    """Request id, security headers, draining, CORS, the 500 handler and the body limit.

    Args:
        app: The ASGI app to wrap.
        max_body_bytes: The largest request body accepted (`BodySizeLimitMiddleware`).
        cors_origins: Allowed CORS origins (`cors_middleware`); none: no CORS at all.
        draining: Whether the replica drains now (`CloseWhileDrainingMiddleware`).
        observe: Called once per HTTP request with its scope, the status answered
            (499 when no response started) and the seconds it took.
        hsts_max_age: As `SecurityHeadersMiddleware`'s.
        trust_incoming_id: As `RequestIdMiddleware`'s `trust_incoming`.

    Raises:
        ValueError: `max_body_bytes` is negative, or an origin is malformed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        cors_origins: Sequence[str] = (),
        draining: Callable[[], bool] | None = None,
        observe: Callable[[Scope, int, float], None] | None = None,
        hsts_max_age: int | None = None,
        trust_incoming_id: bool = True,
    ) -> None:
        if max_body_bytes < 0:
            raise ValueError(f"max_body_bytes is a size in bytes >= 0, not {max_body_bytes}")
        self.app = app
        self.max_body_bytes = max_body_bytes
        origins = check_origins(cors_origins)
        self._cors = CrossOriginMiddleware(app, origins=origins) if origins else None
        self._draining = draining
        self._observe = observe
        self._security = SecurityHeaders(hsts_max_age=hsts_max_age)
        self._trust_incoming_id = trust_incoming_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request through every piece of the edge."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        echoed, token = enter_request(scope, trust_incoming=self._trust_incoming_id)
        status = 0  # none yet
        preflight, cors = self._cors.examine(scope) if self._cors is not None else (False, ())

        async def send_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: a response object may reuse its own. The order is that of
                # the stacked middleware: the innermost's headers first.
                headers = [*message.get("headers", ()), *cors]
                if self._draining is not None and self._draining():
                    headers.append(CLOSE)
                self._security.add_to(headers)
                headers.append(echoed)
                message["headers"] = headers
            await send(message)

        try:
            if preflight and self._cors is not None:
                await self._cors.answer_preflight(scope, receive, send_edge)
            else:
                try:
                    if (limited := self._limited(scope, receive)) is None:
                        await BodyTooLarge(self.max_body_bytes).response()(
                            scope, receive, send_edge
                        )
                    else:
                        await self.app(scope, limited, send_edge)
                except Exception as exc:
                    await answer_unhandled(exc, scope, receive, send_edge, started=status != 0)
        except Exception:
            status = 500
            raise
        finally:
            leave_request(token)
            if self._observe is not None:
                self._observe(scope, status or 499, time.perf_counter() - started)

    def _limited(self, scope: Scope, receive: Receive) -> Receive | None:
        """The `receive` the app gets behind the body limit; `None`: refuse the body at once."""
        declared, streamed = body_framing(scope)
        if declared is not None and declared > self.max_body_bytes:
            return None
        if declared is None and streamed:
            return counting_receive(receive, self.max_body_bytes)
        return receive  # within its declared length, or no body at all
