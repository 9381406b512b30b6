"""The app's own metrics: the HTTP server's requests, as the HTTP edge reports them.

scalepy's primitives report what they do (cache, limiter, breaker, pools, queue,
health); how many requests the service answered, with which status and how fast, is
the app's to measure. It is declared once here, `METRICS` (the catalogue the
dashboard and alert tests read), in OpenTelemetry's semantic conventions:
`http.server.request.duration` in seconds by method, route template and status,
exposed to Prometheus as the histogram `http_server_request_duration_seconds`
(its `_count` is the request rate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from starlette.types import Scope

    from scalepy.telemetry import Instrumentation

__all__ = ("METRICS", "REQUEST_DURATION", "RequestMetrics")

METHOD = "http.request.method"
ROUTE = "http.route"
"""The route template that matched (`/todos/{todo_id}`), never the path: few values."""
STATUS = "http.response.status_code"

REQUEST_DURATION = Metric(
    name="http.server.request.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time from a request's arrival to the end of its response, by route and status.",
    labels=(METHOD, ROUTE, STATUS),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
METRICS = (REQUEST_DURATION,)
"""Every metric the app itself emits (scalepy's catalogues list the rest)."""

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class RequestMetrics:
    """Records `http.server.request.duration` for each HTTP request the app answers.

    `todo.http.EdgeMiddleware` calls `observe` once per request. The route is the
    template Starlette's router matched (`scope["route"]`, without its converters:
    `/todos/{todo_id}`), or `""` for a path no route matched; a method outside the
    standard ones is `_OTHER` (as the semantic conventions say), so clients cannot
    mint label values. A request whose response never started (the client left) is
    recorded as 499.
    """

    __slots__ = ("_duration", "_labels")

    def __init__(self, instrumentation: Instrumentation) -> None:
        self._duration = instrumentation.metric(REQUEST_DURATION)
        # One label set per (standard method, route, status): few, and built once each.
        self._labels: dict[tuple[str, str, int], dict[str, str]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Record that the request of `scope` was answered `status` after `seconds`."""
        key = (scope["method"], getattr(scope.get("route"), "path_format", ""), status)
        labels = self._labels.get(key)
        if labels is None:
            labels = self._label_set(*key)
        self._duration.record(seconds, labels)

    def _label_set(self, method: str, route: str, status: int) -> dict[str, str]:
        """Build the labels of a request; remember them if the method is a standard one."""
        if method not in _METHODS:  # not remembered: clients choose these freely
            return {METHOD: "_OTHER", ROUTE: route, STATUS: str(status)}
        labels = self._labels[method, route, status] = {
            METHOD: method,
            ROUTE: route,
            STATUS: str(status),
        }
        return labels
