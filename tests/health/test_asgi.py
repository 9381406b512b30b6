"""The health endpoints over ASGI, driven in-process."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from scalepy.health import Check, Health, Observation
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.telemetry import combine, get_default, set_default
from scalepy.testing import FakeClock, RecordingInstrumentation, asgi_request
from tests.health.probes import Probe
from tests.health.schema import validate_health_json
from tests.support.asgi import run_lifespan

if TYPE_CHECKING:
    # scalepy's own ASGI type aliases (ASGI is a convention; scalepy exports no types for it).
    from scalepy._asgi import Message, Receive, Scope, Send
    from scalepy.health import HealthApp

HEALTH_JSON = "application/health+json"


def healthy(**options: Any) -> Health:
    """A started health with one passing and one non-critical check, on a fake clock."""
    checks = [
        Check(
            name="db",
            probe=Probe(result=Observation(measurement="responseTime", value=1.5, unit="ms")),
            component_type="datastore",
        ),
        Check(name="cache", probe=Probe(), critical=False),
    ]
    health = Health(checks, clock=FakeClock(), drain_delay=0, **options)
    health.mark_started()
    return health


async def get(app: HealthApp, path: str, *, root_path: str = "") -> list[Message]:
    """GET `path` under `root_path` (which asgi_request leaves empty); the messages sent back."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": root_path,
        "headers": [],
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/health/live", 200, {"status": "pass"}),
        ("/health/ready", 200, {"status": "pass"}),
        ("/health/startup", 200, {"status": "pass"}),
    ],
)
async def test_probes_answer_status_only(path: str, status: int, body: dict[str, str]) -> None:
    """Probes answer health+json with the status alone, never cached by intermediaries."""
    response = await asgi_request(healthy().asgi, path)

    assert (status, body) == (response.status, validate_health_json(response.body, details=False))
    assert HEALTH_JSON == response.header("content-type")
    assert "no-store" == response.header("cache-control")
    assert str(len(response.body)) == response.header("content-length")


async def test_failing_readiness_is_503() -> None:
    """A critical check failing answers 503 on /health/ready and /health, 200 on /health/live."""
    health = Health([Check(name="db", probe=Probe(error=OSError("refused")))], clock=FakeClock())
    health.mark_started()

    statuses = [
        (await asgi_request(health.asgi, path)).status
        for path in ("/health/ready", "/health", "/health/live")
    ]

    assert [503, 503, 200] == statuses


async def test_not_started_fails_startup_and_readiness() -> None:
    """Before mark_started() startup and readiness answer 503 "starting"."""
    health = Health(clock=FakeClock())

    for path in ("/health/startup", "/health/ready"):
        response = await asgi_request(health.asgi, path)
        assert (503, {"status": "fail", "output": "starting"}) == (
            response.status,
            json.loads(response.body),
        )


async def test_details_are_opt_in() -> None:
    """Without public_details, a token or a predicate, /health answers the status alone."""
    health = healthy(service_id="todo")

    response = await asgi_request(health.asgi, "/health")

    assert (200, {"status": "pass"}) == (
        response.status,
        validate_health_json(response.body, details=False),
    )


async def test_details_carry_the_checks() -> None:
    """With public_details, /health shows every check and the service fields, valid health+json."""
    health = healthy(
        service_id="todo",
        version="1",
        release_id="abc",
        description="Todo API",
        public_details=True,
    )

    response = await asgi_request(health.asgi, "/health")

    body = validate_health_json(response.body, details=True)
    assert (200, "pass") == (response.status, body["status"])
    assert ["db:responseTime", "cache"] == list(body["checks"])
    assert ("todo", "1", "abc", "Todo API") == (
        body["serviceId"],
        body["version"],
        body["releaseId"],
        body["description"],
    )


async def test_details_token() -> None:
    """With details_token, /health needs the bearer token; probes stay open."""
    health = healthy(details_token="s3cret")

    missing = await asgi_request(health.asgi, "/health")
    wrong = await asgi_request(health.asgi, "/health", headers=[("authorization", "Bearer no")])
    right = await asgi_request(health.asgi, "/health", headers=[("authorization", "bearer s3cret")])

    assert (401, 401, 200) == (missing.status, wrong.status, right.status)
    assert 'Bearer realm="health"' == missing.header("www-authenticate")
    assert "application/problem+json" == missing.header("content-type")
    assert 401 == json.loads(missing.body)["status"]
    assert 200 == (await asgi_request(health.asgi, "/health/ready")).status


async def test_details_predicate() -> None:
    """With details_allowed, /health answers 403 when the predicate refuses the scope."""
    health = healthy(details_allowed=lambda scope: scope["client"][0].startswith("10."))

    inside = await asgi_request(health.asgi, "/health", peer="10.0.0.7")
    outside = await asgi_request(health.asgi, "/health", peer="203.0.113.9")

    assert (200, 403) == (inside.status, outside.status)
    assert "Forbidden" == json.loads(outside.body)["title"]


async def test_drain_endpoint_fails_readiness() -> None:
    """POST /health/drain answers once held; readiness then fails, liveness passes."""
    health = healthy()

    drained = await asgi_request(health.asgi, "/health/drain", method="POST")
    ready = await asgi_request(health.asgi, "/health/ready")

    assert (200, {"draining": True}) == (drained.status, json.loads(drained.body))
    assert (503, {"status": "fail", "output": "draining"}) == (ready.status, json.loads(ready.body))
    assert 200 == (await asgi_request(health.asgi, "/health/live")).status


async def test_drain_needs_post_and_its_token() -> None:
    """GET cannot drain by default; with drain_token the bearer token is required."""
    health = healthy(drain_token="t0ken")

    get = await asgi_request(health.asgi, "/health/drain")
    anonymous = await asgi_request(health.asgi, "/health/drain", method="POST")

    assert (405, "POST") == (get.status, get.header("allow"))
    assert 401 == anonymous.status
    assert not health.draining
    authorized = [("authorization", "Bearer t0ken")]
    assert (
        200
        == (
            await asgi_request(health.asgi, "/health/drain", method="POST", headers=authorized)
        ).status
    )
    assert health.draining


async def test_drain_by_get_for_http_get_hooks() -> None:
    """drain_methods=["GET"] serves Kubernetes httpGet preStop hooks."""
    health = healthy(drain_methods=["get"])

    assert 200 == (await asgi_request(health.asgi, "/health/drain")).status
    assert health.draining


async def test_head_and_other_methods() -> None:
    """HEAD answers headers without a body; other methods get 405 with Allow."""
    app = healthy().asgi

    head = await asgi_request(app, "/health/ready", method="HEAD")
    post = await asgi_request(app, "/health/ready", method="POST")

    assert (200, b"", "17") == (head.status, head.body, head.header("content-length"))
    assert (405, "GET, HEAD") == (post.status, post.header("allow"))


async def test_unknown_path_is_404() -> None:
    """Paths the app does not serve answer 404 problem+json."""
    response = await asgi_request(healthy().asgi, "/health/nope")

    assert (404, "application/problem+json") == (response.status, response.header("content-type"))


async def test_prefix_and_root_path() -> None:
    """Endpoints move with prefix, and are found under a mount's root_path."""
    app = healthy(prefix="/_/status/").asgi
    scope_paths = [endpoint.path for endpoint in app.endpoints]

    sent = await get(app, "/api/_/status/live", root_path="/api")

    assert ["/_/status", "/_/status/live", "/_/status/ready", "/_/status/startup"] == scope_paths[
        :4
    ]
    assert 200 == sent[0]["status"]


@pytest.mark.parametrize(
    ("path", "root_path", "status"),
    [
        ("/api/health/live", "/api", 200),
        ("/health/live", "/api", 200),  # servers that leave root_path out of path
        ("/apihealth/live", "/api", 404),  # not under the mount: nothing is stripped
    ],
)
async def test_root_path_is_stripped_on_segment_boundaries(
    path: str, root_path: str, status: int
) -> None:
    """Only a root_path that ends on a segment boundary is taken off the path."""
    sent = await get(healthy().asgi, path, root_path=root_path)

    assert status == sent[0]["status"]


async def test_root_prefix() -> None:
    """With prefix "/" the details live at "/" and the probes at "/live" and so on."""
    app = healthy(prefix="/", metrics_path=None).asgi

    paths = [endpoint.path for endpoint in app.endpoints]

    assert ["/", "/live", "/ready", "/startup", "/drain"] == paths
    assert 200 == (await asgi_request(app, "/")).status


async def test_cached_probes_reuse_one_encoding_but_fresh_messages() -> None:
    """Cached probes send equal bodies; editing a sent header list changes nothing later."""
    app = healthy().asgi

    first = await get(app, "/health/ready")
    first[0]["headers"].append((b"x-added", b"by middleware"))
    second = await get(app, "/health/ready")

    assert first[1]["body"] is second[1]["body"]
    assert (b"x-added", b"by middleware") not in second[0]["headers"]


async def test_wrap_passes_other_requests_and_scopes_on() -> None:
    """health.wrap(app) answers health paths and hands everything else to the app."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"app"})

    wrapped = healthy().wrap(app)
    other = await asgi_request(wrapped, "/todos")
    probe = await asgi_request(wrapped, "/health/live")
    await run_lifespan(wrapped)

    assert (b"app", 200) == (other.body, probe.status)
    assert ["http", "lifespan"] == seen


async def test_bare_app_runs_the_lifespan() -> None:
    """As the top-level app, health.asgi starts the health at startup and closes it at shutdown."""
    health = Health(clock=FakeClock(), drain_delay=30)
    serving: list[tuple[bool, bool]] = []

    async def observe() -> None:
        serving.append((health.started, health.loop_monitor.running))

    sent = await run_lifespan(health.asgi, while_serving=observe)

    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == sent
    assert [(True, True)] == serving
    assert (True, False) == (health.draining, health.loop_monitor.running)


async def test_websocket_without_an_app_is_ignored() -> None:
    """A WebSocket scope reaching the bare health app gets no answer (the server refuses it)."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await healthy().asgi({"type": "websocket", "path": "/health"}, receive, send)

    assert [] == sent


async def test_metrics_endpoint_serves_the_instrumentation() -> None:
    """/metrics renders what the health's instrumentation recorded, health metrics included."""
    prometheus = PrometheusInstrumentation(registry=CollectorRegistry())
    health = Health(
        [Check(name="db", probe=Probe())],
        instrumentation=combine(RecordingInstrumentation(), prometheus),
        clock=FakeClock(),
    )
    health.mark_started()
    await asgi_request(health.asgi, "/health/ready")

    text = await asgi_request(health.asgi, "/metrics")
    openmetrics = await asgi_request(
        health.asgi, "/metrics", headers=[("accept", "application/openmetrics-text")]
    )

    assert 200 == text.status
    assert (text.header("content-type") or "").startswith("text/plain")
    labels = b'{scalepy_health_check_name="db",scalepy_health_check_status="pass"}'
    assert b"scalepy_health_check_status" + labels + b" 1.0" in text.body
    assert b"scalepy_health_check_duration_seconds_count" + labels + b" 1.0" in text.body
    assert (openmetrics.header("content-type") or "").startswith("application/openmetrics-text")
    assert openmetrics.body.endswith(b"# EOF\n")


async def test_metrics_come_from_the_process_default() -> None:
    """Without an instrumentation, /metrics renders the process default's metrics."""
    previous = get_default()
    set_default(PrometheusInstrumentation(registry=CollectorRegistry()))
    try:
        health = Health([Check(name="db", probe=Probe())], clock=FakeClock())
    finally:
        set_default(previous)
    health.mark_started()
    await asgi_request(health.asgi, "/health/ready")

    response = await asgi_request(health.asgi, "/metrics")

    assert 200 == response.status
    assert b"scalepy_health_check_status{" in response.body


async def test_metrics_can_be_turned_off() -> None:
    """metrics_path=None serves no /metrics."""
    response = await asgi_request(Health(metrics_path=None, clock=FakeClock()).asgi, "/metrics")

    assert 404 == response.status


async def test_metrics_without_an_exposition() -> None:
    """An instrumentation that cannot render metrics: /metrics answers 501 saying what to give."""
    health = Health(instrumentation=RecordingInstrumentation(), clock=FakeClock())

    response = await asgi_request(health.asgi, "/metrics")

    assert (501, "application/problem+json") == (response.status, response.header("content-type"))
    assert "PrometheusInstrumentation" in json.loads(response.body)["detail"]


async def test_probe_storm_runs_each_check_once() -> None:
    """200 concurrent /health/ready requests run each check exactly once."""
    gate = asyncio.Event()
    probes = [Probe(gate=gate), Probe(gate=gate)]
    health = Health(
        [Check(name="db", probe=probes[0]), Check(name="cache", probe=probes[1])],
        clock=FakeClock(),
    )
    health.mark_started()

    storm = [asyncio.ensure_future(asgi_request(health.asgi, "/health/ready")) for _ in range(200)]
    await probes[1].started.wait()
    gate.set()
    responses = await asyncio.gather(*storm)

    assert {200} == {response.status for response in responses}
    assert [1, 1] == [probe.runs for probe in probes]


def test_repr_lists_the_paths() -> None:
    """repr() of the ASGI app lists its paths."""
    assert (
        "<HealthApp /health, /health/live, /health/ready, /health/startup, /health/drain, /metrics>"
        == repr(Health().asgi)
    )


async def test_head_never_drains() -> None:
    """Even with GET allowed, HEAD /health/drain is refused and drains nothing."""
    health = healthy(drain_methods=["GET", "POST"])

    response = await asgi_request(health.asgi, "/health/drain", method="HEAD")

    assert (405, False) == (response.status, health.draining)
