"""CORS for the Todo-Backend contract: browsers preflight every write, origins are explicit.

```python
middleware = [Middleware(RequestIdMiddleware), Middleware(SecurityHeadersMiddleware)]
if (cors := cors_middleware(settings.cors_origins)) is not None:
    middleware.append(cors)
```

A Todo-Backend client (todobackend.com) runs on another origin and sends JSON,
PATCH and DELETE, so the browser preflights every call but a plain GET.
`CrossOriginMiddleware` answers those preflights (through Starlette's
`CORSMiddleware`) before the app and the rate limiter run, with the contract's
methods, headers and exposed headers; it checks the configured origins at start,
and answers a refused preflight in problem+json.

- No origins (the default) installs nothing: no `Access-Control-*` header is ever
  sent, so browsers keep other sites out, and a preflight is a plain `405`.
- `["*"]` lets any site call the API (the public demo, the Todo-Backend spec
  suite). Auth is a bearer token, never a cookie, so credentials are not allowed.
- Otherwise each origin is `scheme://host[:port]`, exactly as browsers send it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from todo.http._asgi import adding_headers
from todo.http.problem import Problem

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.datastructures import Headers
    from starlette.responses import Response
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = (
    "ALLOWED_METHODS",
    "ALLOWED_REQUEST_HEADERS",
    "EXPOSED_HEADERS",
    "CrossOriginMiddleware",
    "check_origins",
    "cors_middleware",
)

ALLOWED_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")
"""The methods of the Todo-Backend routes (a preflight asks about one of them)."""

ALLOWED_REQUEST_HEADERS = ("Authorization", "Content-Type", "X-Request-ID")
"""Headers a browser may send besides the CORS-safelisted ones."""

EXPOSED_HEADERS = (
    "Location",
    "Link",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "X-Request-ID",
)
"""Response headers a browser script may read besides the CORS-safelisted ones."""

_VARY = (b"vary", b"Origin")  # the answer depends on the origin: caches must key on it


class CrossOriginMiddleware:
    """CORS for a bearer-token API, pure ASGI but for the preflights.

    A request without `Origin` (servers, curl, load generators, same-origin
    reads) passes untouched. A preflight is answered by Starlette's
    `CORSMiddleware`, a refusal in problem+json. Any other request from a browser
    gets the allow/expose headers added to its response from a precomputed list:
    Starlette's does the same through its header classes at several times the cost.

    Args:
        app: The ASGI app to wrap.
        origins: Allowed origins (see `check_origins`), at least one.
        max_age: Seconds a browser may reuse a preflight answer.

    Raises:
        ValueError: No origin (strict CORS needs no middleware), or a malformed one.
    """

    def __init__(self, app: ASGIApp, *, origins: Sequence[str], max_age: int = 600) -> None:
        allowed = check_origins(origins)
        if not allowed:
            raise ValueError("no allowed origin: strict CORS needs no middleware at all")
        self.app = app
        self.origins = allowed
        self._preflight = _ProblemPreflight(
            app,
            allow_origins=allowed,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_REQUEST_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=max_age,
        )
        self._listed = frozenset(origin.encode() for origin in allowed)
        self._exposed = (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode())
        self._any = [(b"access-control-allow-origin", b"*"), self._exposed, _VARY]
        self._any_origin = allowed == ("*",)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a preflight, or serve the request with the CORS headers its origin gets."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        preflight, headers = self.examine(scope)
        if preflight:
            await self.answer_preflight(scope, receive, send)
        elif headers:
            await self.app(scope, receive, adding_headers(send, headers))
        else:
            await self.app(scope, receive, send)

    def examine(self, scope: Scope) -> tuple[bool, Sequence[tuple[bytes, bytes]]]:
        """Whether the HTTP request of `scope` is a preflight; else the headers its answer gets.

        No headers for a request without `Origin`.
        """
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None:
            return False, ()
        if preflight and scope["method"] == "OPTIONS":
            return True, ()
        return False, self._headers_for(origin)

    async def answer_preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the preflight request of `scope` (see `examine`)."""
        await self._preflight(scope, receive, send)

    def _headers_for(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        if self._any_origin:
            return self._any
        if origin in self._listed:
            return [(b"access-control-allow-origin", origin), self._exposed, _VARY]
        return [_VARY]  # refused: without an allow header the browser hides the answer


class _ProblemPreflight(CORSMiddleware):
    """Starlette's `CORSMiddleware`, answering a refused preflight in problem+json."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answer a preflight; a refusal keeps Starlette's 400, headers and reason."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode()  # e.g. "Disallowed CORS origin, method"
        headers = {
            name: value
            for name, value in response.headers.items()
            if name.startswith("access-control-") or name == "vary"
        }
        return Problem(response.status_code, f"{refused}.", headers=headers).response()


def check_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """The origins, checked: `("*",)`, or `scheme://host[:port]` each.

    Raises:
        ValueError: An origin has a path, a query, a trailing slash or no scheme
            (a browser would never send it, so it would silently match nothing),
            or `*` is mixed with explicit origins.
    """
    origins = tuple(origin.strip() for origin in origins if origin.strip())
    if "*" in origins:
        if len(origins) > 1:
            raise ValueError(f"'*' allows every origin: list it alone, not with {origins}")
        return origins
    for origin in origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or f"{parts.scheme}://{parts.netloc}" != origin
        ):
            raise ValueError(
                f"a CORS origin is scheme://host[:port] with no path or trailing slash, "
                f"e.g. 'https://todobackend.com'; not {origin!r}"
            )
    return origins


def cors_middleware(origins: Sequence[str], *, max_age: int = 600) -> Middleware | None:
    """The CORS middleware for the allowed `origins`, `None` when none are (strict).

    Args:
        origins: Allowed origins (see `check_origins`); empty for none.
        max_age: Seconds a browser may reuse a preflight answer.

    Raises:
        ValueError: An origin is malformed (see `check_origins`).
    """
    allowed = check_origins(origins)
    if not allowed:
        return None
    return Middleware(CrossOriginMiddleware, origins=allowed, max_age=max_age)
