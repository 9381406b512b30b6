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
import random
import re
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from todo.http._asgi import adding_headers

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = (
    "REQUEST_ID_HEADER",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "current_request_id",
    "enter_request",
    "leave_request",
)

REQUEST_ID_HEADER = "X-Request-ID"

_SAFE_ID = re.compile(rb"[A-Za-z0-9._:+=/-]{1,128}")
_current: ContextVar[str | None] = ContextVar("todo_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, `None` outside of one."""
    return _current.get()


def enter_request(
    scope: Scope, *, trust_incoming: bool = True
) -> tuple[tuple[bytes, bytes], Token[str | None]]:
    """Give the HTTP request of `scope` its id: in `scope["state"]`, and current from now.

    Returns:
        The `X-Request-ID` header echoing it, and the token `leave_request` takes
        once the request is served.
    """
    request_id = (trust_incoming and _incoming(scope)) or _new_id()
    scope.setdefault("state", {})["request_id"] = request_id
    return (b"x-request-id", request_id.encode()), _current.set(request_id)


def leave_request(token: Token[str | None]) -> None:
    """Make the id `enter_request` set no longer current."""
    _current.reset(token)


def _new_id() -> str:
    # Unique, not secret (clients see it): a 128-bit draw from the process's generator
    # (reseeded in each forked worker) costs a fraction of `secrets`' system call;
    # formatted as one number, without `randbytes`' bytes object.
    return f"{random.getrandbits(128):032x}"


def _incoming(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if _SAFE_ID.fullmatch(value) else None
    return None


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
        echoed, token = enter_request(scope, trust_incoming=self.trust_incoming)
        try:
            await self.app(scope, receive, adding_headers(send, [echoed]))
        finally:
            leave_request(token)


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record: the current request's id, `-` outside of one.

    Attach it to a handler (handler filters also see records of child loggers),
    then use `%(request_id)s` in the handler's format.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Set `record.request_id`; never drops a record."""
        record.request_id = _current.get() or "-"
        return True
