"""Every exception a request can end in, answered as `application/problem+json`.

```python
app = Starlette(
    routes=...,
    middleware=[..., Middleware(UnhandledErrorMiddleware)],
    exception_handlers=problem_handlers(),
)
```

`problem_handlers()` answers the errors that have a meaning for the client:

| raised                                            | status                          |
|---------------------------------------------------|---------------------------------|
| `Problem`                                         | its own                         |
| Starlette `HTTPException`                         | its own (`405` keeps `Allow`)   |
| `msgspec.ValidationError`                         | 422, with the field's pointer   |
| `msgspec.DecodeError` (bad JSON)                  | 400                             |
| `CircuitOpenError`                                | 503 + `Retry-After`, `breaker`  |
| `BulkheadFull`, `PoolError`, `BackendUnavailable` | 503                             |
| `RateLimitExceeded` (a decorator's)               | 429 + `Retry-After`             |
| `CostExceedsBurst`                                | 413                             |

The `429` and `413` that scalepy's `RateLimitMiddleware` answers itself are RFC 9457
bodies of the same shape (`type` `about:blank`, `title`, `status`, `detail`, and a
`retry_after` member on a 429), so clients see one error format.

`UnhandledErrorMiddleware` answers anything else `500`, with no traceback in the
body, and logs it once with the request id. A client that left before its body
arrived (Starlette's `ClientDisconnect`) gets nothing: nobody is there to read an
answer, and its leaving is not the server's error (the request metrics record 499).
Starlette's own last-resort handler sits outside every user middleware, so its 500
would lack the request id, the security and the CORS headers: this one goes inside them.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from scalepy.errors import (
    BackendUnavailable,
    BulkheadFull,
    CircuitOpenError,
    CostExceedsBurst,
    PoolError,
    RateLimitExceeded,
)
from todo.http._asgi import TrackedSend
from todo.http.problem import Problem
from todo.http.request_id import current_request_id

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ("UnhandledErrorMiddleware", "answer_unhandled", "problem_for", "problem_handlers")

_logger = logging.getLogger("todo.http")
_AT_PATH = re.compile(r"(?P<detail>.*) - at `(?P<path>\$[^`]*)`", re.DOTALL)
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNAVAILABLE = (BulkheadFull, PoolError, BackendUnavailable)


def problem_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """Starlette `exception_handlers` answering each error `problem_for` knows."""
    handled = (Problem, HTTPException, msgspec.DecodeError, CircuitOpenError, RateLimitExceeded)
    return dict.fromkeys((*handled, *_UNAVAILABLE), _answer)


async def _answer(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code < 400:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return problem_for(exc).response()


def problem_for(exc: Exception) -> Problem:
    """The problem answering `exc`: `500` for an error with no meaning for the client."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, HTTPException):
        return _http_problem(exc)
    if isinstance(exc, msgspec.ValidationError):
        return _invalid(str(exc))
    if isinstance(exc, msgspec.DecodeError):
        return Problem(400, str(exc))
    if isinstance(exc, CircuitOpenError):
        return Problem(
            503,
            f"The {exc.name} dependency is failing; requests to it are paused.",
            # 0 while its half-open trial runs: the trial settles soon, say a second.
            headers=_retry_after(max(exc.retry_after, 1.0)),
            breaker=exc.name,
        )
    if isinstance(exc, _UNAVAILABLE):
        return Problem(503, "A dependency is overloaded or unreachable; try again shortly.")
    if isinstance(exc, CostExceedsBurst):
        return Problem(413, str(exc))
    if isinstance(exc, RateLimitExceeded):
        return Problem(429, "Rate limit exceeded.", headers=_retry_after(exc.retry_after))
    return Problem(500, "The server failed to answer this request.")


def _http_problem(exc: HTTPException) -> Problem:
    headers = exc.headers
    if headers and "Allow" in headers:
        # Starlette joins a route's method set, whose order changes with each process's
        # string hashing: sorted, every replica answers the same header.
        methods = sorted(method.strip() for method in headers["Allow"].split(","))
        headers = {**headers, "Allow": ", ".join(methods)}
    problem = Problem(exc.status_code, headers=headers)
    if exc.detail != problem.title:  # Starlette's default detail is the status phrase
        problem.detail = exc.detail
    return problem


def _invalid(message: str) -> Problem:
    """422 for a body of the wrong shape, pointing at the field when msgspec names it."""
    match = _AT_PATH.fullmatch(message)  # no path: the error is about the whole document
    detail, path = (match["detail"], match["path"]) if match else (message, "$")
    error = {"detail": detail}
    if (pointer := _json_pointer(path)) is not None:
        error["pointer"] = pointer
    return Problem(422, message, errors=[error])


def _json_pointer(path: str) -> str | None:
    """`$.tags[2].name` -> `#/tags/2/name`; `None` when it hides a key (`$[...]`)."""
    steps = _PATH_STEP.findall(path[1:])
    if "".join(f".{name}" if name else f"[{index}]" for name, index in steps) != path[1:]:
        return None
    tokens = (name.replace("~", "~0").replace("/", "~1") or index for name, index in steps)
    return "#" + "".join(f"/{token}" for token in tokens)


def _retry_after(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds, rounded up; none when the wait is unknown (0, inf)."""
    if not 0 < seconds < math.inf:
        return {}
    return {"Retry-After": str(math.ceil(seconds))}


class UnhandledErrorMiddleware:
    """Answer an exception that escaped the handlers as problem+json; log unexpected ones once.

    An unexpected exception is answered `500` (with the request id in the body);
    one `problem_for` knows gets its own status, so the middleware also serves
    apps without `problem_handlers()`.

    Put it inside the request-id, security-header and CORS middleware so the 500
    carries their headers. The error is not re-raised (the server would log it a
    second time). When the response had already started, nothing can be answered:
    the app returns with the response unfinished and the server closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request; turn an escaping exception into a 500."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            await answer_unhandled(exc, scope, receive, send, started=tracked.started)


async def answer_unhandled(
    exc: Exception, scope: Scope, receive: Receive, send: Send, *, started: bool
) -> None:
    """Answer `exc`, which escaped the app, as `UnhandledErrorMiddleware` does.

    Args:
        exc: The exception.
        scope: The request's.
        receive: The request's.
        send: Where the answer goes.
        started: Whether the response had started (then nothing is answered).
    """
    if isinstance(exc, ClientDisconnect):
        _logger.debug(
            "%s %s: the client left before its body arrived", scope["method"], scope["path"]
        )
        return
    problem = problem_for(exc)
    request_id = current_request_id()
    if started or problem.status == 500:
        _logger.error(
            "Unhandled error serving %s %s (request id %s)",
            scope["method"],
            scope["path"],
            request_id,
            exc_info=exc,
        )
    if not started:
        if problem.status == 500 and request_id is not None:
            problem.extensions["request_id"] = request_id
        await problem.response()(scope, receive, send)
