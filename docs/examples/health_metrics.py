"""/metrics: the health serves what its instrumentation renders, here a Prometheus registry."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from scalepy.health import Check, Health
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.testing import asgi_request


async def database() -> None:
    """A probe that passes."""


async def main() -> None:
    """Probe readiness once, then scrape /metrics."""
    # Share this instrumentation with the cache, the limiter, the queue...: one registry.
    metrics = PrometheusInstrumentation(registry=CollectorRegistry())
    health = Health([Check(name="db", probe=database)], instrumentation=metrics)
    health.mark_started()
    assert (await asgi_request(health.asgi, "/health/ready")).status == 200

    scrape = await asgi_request(health.asgi, "/metrics")
    assert scrape.status == 200
    # A state set: one series per status, 1 for the one the check is in.
    passing = '{scalepy_health_check_name="db",scalepy_health_check_status="pass"} 1.0'
    failing = '{scalepy_health_check_name="db",scalepy_health_check_status="fail"} 0.0'
    assert "scalepy_health_check_status" + passing in scrape.body.decode()
    assert "scalepy_health_check_status" + failing in scrape.body.decode()

    # Without an instrumentation that renders metrics, /metrics says what to configure.
    bare = Health([Check(name="db", probe=database)])
    assert (await asgi_request(bare.asgi, "/metrics")).status == 501


if __name__ == "__main__":
    asyncio.run(main())
