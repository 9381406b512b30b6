"""`HealthApp`: the health endpoints as a pure ASGI application, no framework needed.

Probe answers are encoded once per report: while readiness results are cached, a
probe costs a dictionary lookup, an identity check and two `send()` calls. Each
response gets fresh message dicts and header lists, so middleware that edits
headers in place cannot corrupt the cached ones.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scalepy._asgi import PROBLEM_JSON, problem_body
from scalepy.errors import ConfigurationError
from scalepy.health._report import ServiceInfo, render

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy._asgi import ASGIApp, Receive, Scope, Send
    from scalepy.health._health import Health
    from scalepy.health._report import HealthReport
    from scalepy.telemetry import MetricsExposition

__all__ = ("Endpoint", "HealthApp", "HttpOptions")

HEALTH_JSON = b"application/health+json"
_READ = frozenset({"GET", "HEAD"})
_NO_STORE = (b"cache-control", b"no-store")


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


def _response(
    status: int, content_type: bytes, body: bytes, *extra: tuple[bytes, bytes]
) -> _Response:
    headers = ((b"content-type", content_type), (b"content-length", b"%d" % len(body)), _NO_STORE)
    return _Response(status, headers + extra, body)


def _problem(status: int, title: str, detail: str, *extra: tuple[bytes, bytes]) -> _Response:
    """An RFC 9457 problem answer, as the rate limiter's 429s."""
    body = problem_body(status, title, detail)
    return _response(status, PROBLEM_JSON.encode(), body, *extra)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One path `HealthApp` answers."""

    path: str
    """The path, e.g. `/health/ready`."""
    methods: frozenset[str]
    """The HTTP methods it accepts."""
    name: str
    """A route name, e.g. `health_ready` (Starlette's `url_for`)."""


def _path(option: str, path: str) -> str:
    given: object = path  # checked as given, whatever the annotation says
    if not isinstance(given, str) or not given.startswith("/"):
        raise ConfigurationError(f"{option} must be a path starting with '/', got {path!r}")
    return path.rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOptions:
    """How `Health` is exposed over HTTP; `Health` builds it from its arguments.

    Raises:
        ConfigurationError: A path that does not start with '/', paths that
            collide, an empty token, or drain methods that are not HTTP methods.
    """

    prefix: str = "/health"
    """Where the endpoints live: `{prefix}` (details), `{prefix}/live`, `/ready`,
    `/startup`, `/drain`."""
    metrics_path: str | None = "/metrics"
    """Where metrics are served; `None` serves none."""
    metrics: MetricsExposition | None = None
    """What renders them; `None` answers 501 at `metrics_path`."""
    details_token: str | None = field(default=None, repr=False)
    """When set, `{prefix}` shows the details only to requests with
    `Authorization: Bearer <token>` (401 otherwise). Never shown in `repr()`."""
    details_allowed: Callable[[Scope], bool] | None = None
    """When set, `{prefix}` shows the details only to requests for whose ASGI scope it
    returns `True` (403 otherwise)."""
    public_details: bool = False
    """Show the details at `{prefix}` to anyone. With neither this nor a token nor a
    predicate, `{prefix}` answers the status alone, as the probes do."""
    drain_token: str | None = field(default=None, repr=False)
    """When set, `{prefix}/drain` needs `Authorization: Bearer <token>`. Never shown in
    `repr()`."""
    drain_methods: frozenset[str] = frozenset({"POST"})
    """Methods `{prefix}/drain` accepts; add `GET` for a Kubernetes `httpGet` preStop hook."""
    service: ServiceInfo = field(default_factory=ServiceInfo)
    """Top-level fields of the detailed body."""

    def __post_init__(self) -> None:
        prefix = _path("prefix", self.prefix)
        object.__setattr__(self, "prefix", prefix)
        if self.metrics_path is not None:
            metrics = _path("metrics_path", self.metrics_path) or "/"
            object.__setattr__(self, "metrics_path", metrics)
            if metrics == (prefix or "/") or metrics.startswith(f"{prefix}/"):
                raise ConfigurationError(
                    f"metrics_path {metrics!r} collides with the health endpoints under "
                    f"{prefix or '/'!r}"
                )
        for option in ("details_token", "drain_token"):
            if getattr(self, option) == "":
                raise ConfigurationError(f"{option} must be a non-empty string or None")
        if self.public_details and (
            self.details_token is not None or self.details_allowed is not None
        ):
            raise ConfigurationError(
                "public_details shows the details to everyone: give it, or details_token "
                "and details_allowed, not both"
            )
        methods = self.drain_methods
        if not methods:
            raise ConfigurationError("drain_methods must name at least one HTTP method")
        upper = frozenset(method.upper() for method in methods)
        if not upper <= {"GET", "POST", "PUT"}:
            raise ConfigurationError(
                f"drain_methods may hold 'GET', 'POST' and 'PUT', got {sorted(methods)!r}"
            )
        object.__setattr__(self, "drain_methods", upper)

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The paths served, details first."""
        prefix = self.prefix
        endpoints = [
            Endpoint(prefix or "/", _READ, "health"),
            Endpoint(f"{prefix}/live", _READ, "health_live"),
            Endpoint(f"{prefix}/ready", _READ, "health_ready"),
            Endpoint(f"{prefix}/startup", _READ, "health_startup"),
            Endpoint(
                f"{prefix}/drain", self.drain_methods, "health_drain"
            ),  # never HEAD: it drains
        ]
        if self.metrics_path is not None:
            endpoints.append(Endpoint(self.metrics_path, _READ, "metrics"))
        return tuple(endpoints)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _bearer_matches(scope: Scope, token: str) -> bool:
    scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


_UNAUTHORIZED = _problem(
    401,
    "Unauthorized",
    "This endpoint needs an 'Authorization: Bearer <token>' header.",
    (b"www-authenticate", b'Bearer realm="health"'),
)
_FORBIDDEN = _problem(403, "Forbidden", "Health details are not available to this client.")
_NOT_FOUND = _problem(404, "Not Found", "No health endpoint at this path.")
_NO_EXPOSITION = _problem(
    501,
    "Not Implemented",
    "No metrics to serve: give the health an instrumentation that renders them, e.g. "
    "scalepy.integrations.prometheus.PrometheusInstrumentation (the 'prometheus' extra)",
)
_DRAINING = _response(200, b"application/json", b'{"draining":true}')


class HealthApp:
    """Serves a `Health` over ASGI: the probes, the details, drain and metrics.

    Get it as `health.asgi` (or `health.wrap(app)` to put it in front of an
    application); mount it anywhere, e.g. Starlette's `Mount("/", app=health.asgi)`
    or FastAPI's `app.mount("/", health.asgi)`. Paths are matched after the
    scope's `root_path`.

    Args:
        health: What to serve.
        options: Paths, tokens and what renders the metrics.
        app: Where requests for other paths, and non-HTTP scopes, go. Without
            one, other paths get 404, and a lifespan scope starts the health
            (loop monitor, `mark_started()`) and shuts it down.
    """

    __slots__ = ("_app", "_health", "_memo", "_options", "_routes", "endpoints")

    def __init__(self, health: Health, options: HttpOptions, app: ASGIApp | None = None) -> None:
        self._health = health
        self._options = options
        self._app = app
        self._memo: dict[str, tuple[HealthReport, _Response]] = {}
        self.endpoints = options.endpoints()
        """The paths served, with their methods and route names."""
        handlers: dict[str, Callable[[Scope], Awaitable[_Response]]] = {
            "health": self._details,
            "health_live": self._live,
            "health_ready": self._ready,
            "health_startup": self._startup,
            "health_drain": self._drain,
            "metrics": self._metrics,
        }
        self._routes = {
            endpoint.path: (handlers[endpoint.name], endpoint.methods)
            for endpoint in self.endpoints
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a health request, or pass it on to the wrapped application."""
        if scope["type"] != "http":
            if self._app is not None:
                await self._app(scope, receive, send)
            elif scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
            path = path[len(root) :] or "/"
        route = self._routes.get(path)
        if route is None:
            if self._app is not None:
                await self._app(scope, receive, send)
                return
            response = _NOT_FOUND
        elif scope["method"] not in route[1]:
            allow = ", ".join(sorted(route[1])).encode()
            response = _problem(
                405, "Method Not Allowed", f"Use {allow.decode()}.", (b"allow", allow)
            )
        else:
            response = await route[0](scope)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [*response.headers],
            }
        )
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})

    def _encoded(self, slot: str, report: HealthReport, *, details: bool) -> _Response:
        """The response for `report`, encoded once per report object."""
        cached = self._memo.get(slot)
        if cached is not None and cached[0] is report:
            return cached[1]
        body = render(report, details=details, service=self._options.service)
        response = _response(report.http_status, HEALTH_JSON, body)
        self._memo[slot] = (report, response)
        return response

    async def _live(self, scope: Scope) -> _Response:
        return self._encoded("live", self._health.liveness(), details=False)

    async def _startup(self, scope: Scope) -> _Response:
        return self._encoded("startup", self._health.startup_status(), details=False)

    async def _ready(self, scope: Scope) -> _Response:
        return self._encoded("ready", await self._health.readiness(), details=False)

    async def _details(self, scope: Scope) -> _Response:
        options = self._options
        guarded = options.details_token is not None or options.details_allowed is not None
        if not guarded and not options.public_details:
            return self._encoded("summary", await self._health.details(), details=False)
        if options.details_token is not None and not _bearer_matches(scope, options.details_token):
            return _UNAUTHORIZED
        if options.details_allowed is not None and not options.details_allowed(scope):
            return _FORBIDDEN
        return self._encoded("details", await self._health.details(), details=True)

    async def _drain(self, scope: Scope) -> _Response:
        token = self._options.drain_token
        if token is not None and not _bearer_matches(scope, token):
            return _UNAUTHORIZED
        await self._health.drain()
        return _DRAINING

    async def _metrics(self, scope: Scope) -> _Response:
        exposition = self._options.metrics
        if exposition is None:
            return _NO_EXPOSITION
        accept = _header(scope, b"accept") or ""
        # Collecting may read every process's files (multi-process mode): off the loop.
        body, content_type = await asyncio.to_thread(exposition.render_metrics, accept)
        return _response(200, content_type.encode("latin-1"), body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._health.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._health.shutdown(drain_wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    def __repr__(self) -> str:
        paths = ", ".join(endpoint.path for endpoint in self.endpoints)
        return f"<{type(self).__name__} {paths}>"
