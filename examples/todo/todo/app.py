"""`create_app()`: the ASGI application, its middleware in order, its routes and lifespan.

```
uvicorn --factory todo.app:create_app              # or --uds /run/todo.sock behind nginx
```

A request passes through, outermost first:

1. OpenTelemetry: a server span per request, child of the caller's `traceparent`
   (the notification job's span is, in turn, a child of this one), when tracing is
   configured: a tracer provider given to `create_app()`, or an SDK's set as the global
   one before it (e.g. by `opentelemetry-instrument`). Without one, no span would be
   recorded, and the middleware would still cost ~40 % of a cached read;
2. request metrics: `http.server.request.duration` by route and status (`todo.metrics`);
3. request id: taken from `X-Request-ID` or made, echoed, put in every log line;
4. security headers (what helmet sets that matters for a JSON API);
5. `Connection: close` on every response once the replica drains (`/health/drain`);
6. CORS (`TODO_CORS_ORIGINS`; none allowed by default);
7. the last-resort error handler: anything unexpected becomes a 500 problem+json;
8. the body size limit (`TODO_MAX_BODY_BYTES`): 413 before a large body is read
   (2 to 8 are one middleware, `todo.http.EdgeMiddleware`: one layer, not seven);
9. the rate limits, per client (`X-Forwarded-For` believed only from
   `TODO_TRUSTED_PROXIES`), one middleware: one policy for every request, a stricter
   one with a quota of its own on top for writes (`POST`, `PUT`, `PATCH`, `DELETE`), both
   decided in one limiter call; 429 with `Retry-After` and the IETF `RateLimit`
   headers;
10. load shedding (`TODO_SHEDDING`, off by default): the replica's adaptive
   concurrency limit, after the rate limits so that abusers are refused before they
   count; 503 with `Retry-After` when over it; probes and `/metrics` never shed;
11. the routes: the todos, health probes and `/metrics` (never rate limited) and
   `/openapi.json`, with `todo.http`'s exception handlers answering every error
   as `application/problem+json`.

The lifespan (`Services.lifespan()`) migrates the schema in development, then opens
every resource in order; at shutdown readiness fails first, then they close.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import ProxyTracerProvider
from starlette.applications import Starlette
from starlette.middleware import Middleware

from scalepy.ratelimit import TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware, client_ip
from scalepy.shedding import LoadShedMiddleware
from todo import __version__
from todo.http import (
    EdgeMiddleware,
    RequestIdFilter,
    openapi_document,
    openapi_route,
    problem_handlers,
)
from todo.metrics import RequestMetrics
from todo.routes import OPERATIONS, TodoRoutes
from todo.services import Services
from todo.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from todo.settings import Rate

__all__ = ("create_app",)

_DESCRIPTION = (
    "The Todo-Backend API (todobackend.com) composed from scalepy: cached reads, "
    "rate limits, a circuit breaker around PostgreSQL, background jobs, health probes."
)
_WRITES = ("POST", "PUT", "PATCH", "DELETE")
_UNLIMITED = ["/health", "/metrics"]


def create_app(
    settings: Settings | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> Starlette:
    """Build the service.

    Args:
        settings: The configuration; `Settings.from_env()` if `None`.
        tracer_provider: Where spans go; OpenTelemetry's global provider if `None`.
        meter_provider: Where OpenTelemetry metrics go; the global one if `None`.
    """
    settings = settings or Settings.from_env()
    _configure_logging(settings)
    services = Services(settings, tracer_provider=tracer_provider, meter_provider=meter_provider)
    # --8<-- [start:compose]
    tracing = Middleware(
        OpenTelemetryMiddleware,
        excluded_urls="/health,/metrics",
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
    )
    middleware = [
        *([tracing] if _tracing(tracer_provider) else []),
        # Request metrics, request id, security headers, draining, CORS, the 500
        # handler and the body limit (2 to 8 below), as one middleware.
        Middleware(
            EdgeMiddleware,
            max_body_bytes=settings.max_body_bytes,
            cors_origins=settings.cors_origins,
            draining=lambda: services.health.draining,
            observe=RequestMetrics(services.instrumentation).observe,
        ),
        Middleware(
            RateLimitMiddleware,
            limiter=services.limiter,
            policy=_bucket("requests", settings.rate_limit),
            methods=dict.fromkeys(_WRITES, _bucket("writes", settings.write_rate_limit)),
            key=client_ip(trusted_proxies=settings.trusted_proxies),
            exempt=_UNLIMITED,
        ),
        *(
            [Middleware(LoadShedMiddleware, shedder=services.shedder, never_shed=_UNLIMITED)]
            if services.shedder
            else []
        ),
    ]
    routes = TodoRoutes(services.repository, settings).routes()
    document = openapi_document(
        OPERATIONS,
        title="Todo API",
        version=__version__,
        description=_DESCRIPTION,
        bearer_auth=settings.auth == "jwt",
    )
    app = Starlette(
        routes=[*routes, *services.health.routes(), openapi_route(document)],
        middleware=middleware,
        exception_handlers=problem_handlers(),
        lifespan=services.lifespan(),
    )
    app.state.services = services
    return app
    # --8<-- [end:compose]


def _tracing(tracer_provider: TracerProvider | None) -> bool:
    """Whether server spans would be recorded: a provider given, or a global one set.

    The API's default global provider (a proxy) records nothing until an SDK's is set.
    """
    return tracer_provider is not None or not isinstance(
        trace.get_tracer_provider(), ProxyTracerProvider
    )


def _bucket(name: str, rate: Rate) -> TokenBucket:
    """`rate.limit` per `rate.period`, with bursts of up to `rate.limit`."""
    return TokenBucket(capacity=rate.limit, refill_rate=rate.limit / rate.period, name=name)


def _configure_logging(settings: Settings) -> None:
    """Log to stderr with the request id, unless the process configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    logging.getLogger("todo").setLevel(settings.log_level)
