"""One id per request: taken from a sane `X-Request-ID` or made up, echoed, logged.

```python
app = Starlette(routes=..., middleware=[Middleware(RequestIdMiddleware), ...])
handler.addFilter(RequestIdFilter())  # then "%(request_id)s" in the handler's format
```

Handlers read the id with `current_request_id()` (or `request.state.request_id`).
An incoming id is kept only when it is 1-128 characters of `A-Z a-z 0-9 . _ : + = / -`,
so a client can correlate its calls but cannot forge log lines or flood them.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from typing import TYPE_CHECKING

from todo.http._asgi import adding_headers

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = (
    "REQUEST_ID_HEADER",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "current_request_id",
)

REQUEST_ID_HEADER = "X-Request-ID"

_SAFE_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")
_current: ContextVar[str | None] = ContextVar("todo_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, `None` outside of one."""
    return _current.get()


class RequestIdMiddleware:
    """Give each HTTP request an id, echo it in the response, expose it to code and logs.

    Put it first (outermost) so every response carries the id and every log line
    written while serving the request has it.

    Args:
        app: The ASGI app to wrap.
        trust_incoming: Keep a sane incoming `X-Request-ID` (e.g. nginx's
            `$request_id`); `False` always makes a new one.
    """

    def __init__(self, app: ASGIApp, *, trust_incoming: bool = True) -> None:
        self.app = app
        self.trust_incoming = trust_incoming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its id set."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = self._incoming(scope) or secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        echoed = [(b"x-request-id", request_id.encode())]
        token = _current.set(request_id)
        try:
            await self.app(scope, receive, adding_headers(send, echoed))
        finally:
            _current.reset(token)

    def _incoming(self, scope: Scope) -> str | None:
        if not self.trust_incoming:
            return None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                return value.decode("ascii") if _SAFE_ID.fullmatch(value) else None
        return None


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record: the current request's id, `-` outside of one.

    Attach it to a handler (handler filters also see records of child loggers),
    then use `%(request_id)s` in the handler's format.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set `record.request_id`; never drops a record."""
        record.request_id = _current.get() or "-"
        return True
