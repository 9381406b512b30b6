"""The health endpoints inside Starlette: routes, mounts and the lifespan helper."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from scalepy.errors import ConfigurationError
from scalepy.health import Check, Health
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.integrations.starlette import health_routes
from scalepy.testing import FakeClock, asgi_request
from tests.health.probes import Probe
from tests.support.asgi import run_lifespan

if TYPE_CHECKING:
    from starlette.requests import Request


async def home(request: Request) -> PlainTextResponse:
    """The application's own endpoint."""
    return PlainTextResponse("home")


def started_health() -> Health:
    """A started health with one passing check, serving its metrics through Prometheus."""
    health = Health(
        [Check(name="db", probe=Probe())],
        clock=FakeClock(),
        drain_delay=0,
        instrumentation=PrometheusInstrumentation(registry=CollectorRegistry()),
    )
    health.mark_started()
    return health


async def test_routes_serve_every_endpoint() -> None:
    """health.routes() serves the probes, the details, drain and metrics next to the app."""
    health = started_health()
    app = Starlette(routes=[Route("/", home), *health.routes()])

    statuses = [
        (await asgi_request(app, path)).status
        for path in ("/", "/health", "/health/live", "/health/ready", "/health/startup", "/metrics")
    ]

    assert [200] * 6 == statuses
    assert "/health/ready" == app.url_path_for("health_ready")
    assert 200 == (await asgi_request(app, "/health/drain", method="POST")).status
    assert 503 == (await asgi_request(app, "/health/ready")).status


async def test_routes_leave_wrong_methods_to_starlette() -> None:
    """Starlette itself answers 405 for a method an endpoint does not take."""
    app = Starlette(routes=health_routes(started_health()))

    response = await asgi_request(app, "/health/drain")

    assert (405, "POST") == (response.status, response.header("allow"))


async def test_mounted_under_a_prefix() -> None:
    """Mounted under /api, the endpoints answer at /api/health/..."""
    health = started_health()
    app = Starlette(routes=[Mount("/api", routes=health.routes()), Route("/", home)])

    response = await asgi_request(app, "/api/health/ready")

    assert (200, {"status": "pass"}) == (response.status, json.loads(response.body))


async def test_mount_the_asgi_app_at_the_root() -> None:
    """Mount("/", app=health.asgi) after the app's routes serves health and 404s the rest."""
    health = started_health()
    app = Starlette(routes=[Route("/", home), Mount("/", app=health.asgi)])

    assert [200, 200, 404] == [
        (await asgi_request(app, path)).status for path in ("/", "/health/live", "/nope")
    ]


async def test_lifespan_helper_in_starlette() -> None:
    """Starlette(lifespan=health.lifespan(...)) starts the health and shuts it down in order."""
    log: list[str] = []

    class Pools:
        async def open(self) -> None:
            log.append("open")

        async def aclose(self) -> None:
            log.append("close")

    health = Health(clock=FakeClock(), drain_delay=10)
    app = Starlette(
        routes=health.routes(),
        lifespan=health.lifespan(resources=[Pools()], consumers=[lambda: log.append("stop")]),
    )

    async def probe_startup() -> None:
        log.append(f"startup probe {(await asgi_request(app, '/health/startup')).status}")

    sent = await run_lifespan(app, while_serving=probe_startup)

    assert ["lifespan.startup.complete", "lifespan.shutdown.complete"] == sent
    assert ["open", "startup probe 200", "stop", "close"] == log


def test_missing_starlette_names_the_extra() -> None:
    """Without Starlette, routes() fails with the pip command to run; health.asgi still works."""
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from scalepy.health import Health\n"
        "health = Health()\n"
        "assert health.asgi is not None\n"
        "try:\n"
        "    health.routes()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert "pip install 'scalepy-toolkit[starlette]'" in result.stdout


def test_health_routes_refuses_what_is_not_a_health() -> None:
    """`health_routes([...])` raises ConfigurationError naming `Health` (was AttributeError)."""
    with pytest.raises(ConfigurationError, match=r"health_routes\(\) takes a Health, not a list"):
        health_routes([])  # type: ignore[arg-type]  # the misuse under test
