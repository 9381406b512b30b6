"""FastAPI conveniences: a rate limit per route, problem+json errors, health and lifespan.

```python
from fastapi import Depends, FastAPI
from scalepy.integrations.fastapi import error_responses, install, limit

app = FastAPI()
install(app, health, resources=[redis])  # /health/*, /metrics, lifespan, problem+json

per_client = limit(TokenBucket(capacity=20, refill_rate=10.0), limiter=limiter)

@app.get("/todos", dependencies=[Depends(per_client)], responses=error_responses(429))
async def todos() -> list[Todo]: ...
```

A limited route answers `RateLimit-Policy` and `RateLimit` headers, computed by
the code `RateLimitMiddleware` runs; a denied request gets `429` with
`Retry-After` and the middleware's RFC 9457 body, and the endpoint never runs.
`Cache.cached` endpoints need nothing from here: the decorated function keeps its
signature (`__wrapped__`), so FastAPI sees its parameters and return type.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import TYPE_CHECKING, Any, TypeAlias

from scalepy._asgi import PROBLEM_JSON, PROBLEM_TYPE, problem_body
from scalepy._extras import missing_extra
from scalepy._validation import check_object
from scalepy.errors import CircuitOpenError, ConfigurationError
from scalepy.integrations.starlette import health_routes
from scalepy.ratelimit import client_ip
from scalepy.ratelimit._gate import RequestGate
from scalepy.ratelimit._keys import route_suffix
from scalepy.ratelimit._limiter import fixed_cost
from scalepy.ratelimit._problem import too_many_body
from scalepy.ratelimit.asgi import _check_key, _policies

try:
    from fastapi import FastAPI, HTTPException, Request, Response
except ImportError as exc:  # pragma: no cover - exercised by the no-extras check
    raise missing_extra(__name__, "fastapi") from exc

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable

    from scalepy._asgi import Scope
    from scalepy.health import Health
    from scalepy.health._lifespan import Consumer
    from scalepy.ratelimit import Decision, KeyFunc, Policy
    from scalepy.ratelimit.asgi import AsyncLimiter

_Handler: TypeAlias = "Callable[[Request, Any], Coroutine[Any, Any, Response]]"

__all__ = ("RateLimited", "error_responses", "install", "limit", "problem_handlers")

_DEFAULT_KEY = client_ip()


class RateLimited(HTTPException):
    """A `limit()` dependency denied the request: `429` with its rate-limit headers.

    `problem_handlers()` (which `install()` registers) answers it with the RFC 9457
    body `RateLimitMiddleware` sends; FastAPI's own handler would answer
    `{"detail": ...}` with the same status and headers.

    Attributes:
        decision: The limiter's answer.
    """

    def __init__(self, decision: Decision, headers: dict[str, str]) -> None:
        super().__init__(429, "Rate limit exceeded.", headers)
        self.decision = decision


def limit(
    *policies: Policy,
    limiter: AsyncLimiter,
    key: KeyFunc = _DEFAULT_KEY,
    cost: int = 1,
    group: str | None = None,
    headers: bool = True,
    legacy_headers: bool = False,
) -> Callable[[Request, Response], Awaitable[Decision | None]]:
    """A dependency limiting the requests of the routes it is given to.

    ```python
    @app.get("/search", dependencies=[Depends(limit(GCRA(10, 60), limiter=limiter))])
    ```

    Each route has quotas of its own (by its path template, e.g. `/todos/{id}`),
    as `RateLimitMiddleware` gives each prefix its own; routes given the same
    `group` share one. The dependency's value is the decision (`None` when the
    key function returned `EXEMPT`), so an endpoint may read it.

    Headers reach the response FastAPI builds from the endpoint's return value;
    an endpoint that returns a `Response` itself loses those of an allowed request
    (use `RateLimitMiddleware` for it).

    Args:
        *policies: One or more policies, decided together (all or nothing).
        limiter: Decides, e.g. `RateLimiter("redis://...")`.
        key: The identity a request is limited as; `client_ip()` (the peer address,
            forwarding headers ignored) by default. See `RateLimitMiddleware`:
            `EXEMPT` lets a request through, `None` shares the `UNIDENTIFIED` quota.
        cost: What a request costs.
        group: Routes with the same group share their quotas.
        headers: Add `RateLimit-Policy` and `RateLimit` to responses.
        legacy_headers: Add `X-RateLimit-Limit`, `-Remaining` and `-Reset` too.

    Returns:
        An async callable for `Depends()`; a denied request raises `RateLimited`.

    Raises:
        ConfigurationError: No policy, something that is not a policy, names that
            cannot be shown together, an empty group, a cost that is not a whole
            number >= 0 or that no policy could ever allow, a limiter that is not
            one (a URL, say), or a key that is not a function of the scope
            (`key=client_ip` for `key=client_ip()`).
    """
    check_object(
        "limit(limiter=...) takes",
        limiter,
        "acquire",
        "a RateLimiter",
        "e.g. limiter=RateLimiter(url), built once and shared",
    )
    _check_key(key)
    checked = _policies("policies", policies)
    fixed_cost(checked, cost)
    if group is not None and not group:
        raise ConfigurationError("group must be a non-empty name, or None for a quota per route")
    gate = RequestGate(limiter, key, headers=headers, legacy_headers=legacy_headers)
    # A route's path starts with "/": a group's suffix never equals one.
    shared = None if group is None else route_suffix(f"group:{group}")

    async def rate_limit(request: Request, response: Response) -> Decision | None:
        scope = request.scope
        suffix = shared if shared is not None else route_suffix(_route_path(scope))
        verdict = await gate.decide(scope, checked, suffix, cost)
        if verdict is None:
            return None
        if not verdict.decision.allowed:
            raise RateLimited(verdict.decision, dict(verdict.headers))
        for name, value in verdict.headers:
            response.headers.append(name, value)
        return verdict.decision

    return rate_limit


def _route_path(scope: Scope) -> str:
    """The matched route's path template, e.g. `/todos/{id}` (FastAPI puts the route in scope)."""
    return str(scope["route"].path)


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)  # registered for RateLimited only
    return Response(too_many_body(exc.decision), 429, exc.headers, PROBLEM_JSON)


async def _circuit_open(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CircuitOpenError)  # registered for CircuitOpenError only
    detail = f"The {exc.name} dependency is failing; requests to it are paused."
    headers = {}
    if 0 < exc.retry_after < math.inf:
        headers["retry-after"] = str(math.ceil(exc.retry_after))
    body = problem_body(503, "Service Unavailable", detail)
    return Response(body, 503, headers, PROBLEM_JSON)


def problem_handlers() -> dict[int | type[Exception], _Handler]:
    """Exception handlers answering scalepy's errors as `application/problem+json`.

    - `RateLimited` (a `limit()` denial): `429` with `Retry-After` and the
      rate-limit headers, the body `RateLimitMiddleware` sends;
    - `CircuitOpenError` (an open breaker): `503`, with `Retry-After` when the
      breaker knows when it lets a trial call through.

    Returns:
        For `FastAPI(exception_handlers=...)`; `install()` adds them itself.
    """
    return {RateLimited: _rate_limited, CircuitOpenError: _circuit_open}


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "default": PROBLEM_TYPE},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "retry_after": {"type": "integer", "minimum": 1, "description": "Seconds to wait."},
    },
    "required": ["type", "title", "status"],
}
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}
_RESPONSES: dict[int, dict[str, Any]] = {
    429: {
        "description": "Too Many Requests: a rate limit is reached.",
        "headers": {
            "Retry-After": _RETRY_AFTER,
            "RateLimit": {
                "description": "What is left of each quota (draft-ietf-httpapi-ratelimit-headers).",
                "schema": {"type": "string"},
            },
            "RateLimit-Policy": {
                "description": "The quota policies that apply.",
                "schema": {"type": "string"},
            },
        },
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
    },
    503: {
        "description": "Service Unavailable: a dependency is failing or the service is overloaded.",
        "headers": {"Retry-After": _RETRY_AFTER},
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI descriptions of scalepy's answers, for a route's or the app's `responses=`.

    ```python
    @app.get("/todos", responses=error_responses(429, 503))
    ```

    Args:
        *statuses: Any of 429 (with `Retry-After`, `RateLimit` and
            `RateLimit-Policy`) and 503 (with `Retry-After`); both when none given.

    Returns:
        Status -> a new OpenAPI response object with an `application/problem+json` body.

    Raises:
        ValueError: A status scalepy does not answer.
    """
    unknown = sorted(set(statuses) - _RESPONSES.keys())
    if unknown:
        raise ValueError(f"scalepy describes 429 and 503, not {unknown}")
    # Copies: a caller may add to its own, e.g. an example body.
    return {status: copy.deepcopy(_RESPONSES[status]) for status in statuses or _RESPONSES}


def install(
    app: FastAPI,
    health: Health,
    *,
    resources: Iterable[object] = (),
    consumers: Iterable[Consumer] = (),
    on_startup: Iterable[Callable[[], Awaitable[object]]] = (),
    drain_wait: bool = False,
    stop_timeout: float = 10.0,
    close_timeout: float = 10.0,
) -> None:
    """Serve `health`'s endpoints, run its lifespan around the app's own, answer problem+json.

    - The health routes (`/health/live`, `/health/ready`, ..., `/metrics`) are
      put before the app's own, so that no route shadows them (a catch-all
      `/{path:path}`, say), and left out of the OpenAPI document.
    - The app's lifespan runs inside `health.lifespan(...)`: the resources open
      before the app's own startup code, and close after its shutdown code; the
      arguments are those of `Health.lifespan`.
    - `problem_handlers()` are registered.

    Args:
        app: The application.
        health: What to serve.
        resources: Opened at startup, closed in reverse order at shutdown.
        consumers: Stopped at shutdown, after readiness failed.
        on_startup: Run after the resources opened, before readiness passes.
        drain_wait: Whether shutdown holds `drain_delay`.
        stop_timeout: Seconds the consumers get to stop.
        close_timeout: Seconds each resource gets to close.

    Raises:
        ConfigurationError: Like `Health.lifespan()`.
    """
    outer = health.lifespan(
        resources=resources,
        consumers=consumers,
        on_startup=on_startup,
        drain_wait=drain_wait,
        stop_timeout=stop_timeout,
        close_timeout=close_timeout,
    )
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with outer(application), inner(application) as state:
            yield state

    app.router.lifespan_context = lifespan
    app.router.routes[:0] = health_routes(health)  # first: no route of the app shadows a probe
    for error, handler in problem_handlers().items():
        app.add_exception_handler(error, handler)
