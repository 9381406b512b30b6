"""A check of your own: observations, non-critical warnings, guarded details without secrets."""

from __future__ import annotations

import asyncio
import json
import shutil

from scalepy.health import Check, Health, Observation, Status
from scalepy.testing import asgi_request


async def disk_space() -> list[Observation]:
    """Free space on the volume the app writes to: warn under 10 %."""
    usage = shutil.disk_usage("/")
    free = round(100 * usage.free / usage.total, 1)
    return [
        Observation(
            measurement="utilization",
            value=round(100 - free, 1),
            unit="percent",
            status=Status.WARN if free < 10 else Status.PASS,
            output=f"only {free} % free" if free < 10 else None,
        )
    ]


async def search_engine() -> None:
    """A dependency that is down; its error message leaks a password."""
    raise ConnectionError("cannot reach http://search:hunter2@search.internal:9200")


async def main() -> None:
    """A failing non-critical check warns; the details need a token and show no driver text."""
    health = Health(
        checks=[
            Check(name="disk", probe=disk_space, component_type="system"),
            Check(
                name="search",
                probe=search_engine,
                component_type="component",
                critical=False,  # search down: degrade, keep serving
                timeout=0.5,
                measurement="responseTime",
            ),
        ],
        details_token="let-me-see",
    )
    health.mark_started()

    ready = await asgi_request(health.asgi, "/health/ready")
    assert (ready.status, json.loads(ready.body)) == (200, {"status": "warn"})

    denied = await asgi_request(health.asgi, "/health")
    assert denied.status == 401

    details = await asgi_request(
        health.asgi, "/health", headers=[("authorization", "Bearer let-me-see")]
    )
    body = json.loads(details.body)
    search = body["checks"]["search:responseTime"][0]
    assert search["status"] == "fail"  # the component failed; the service only warns
    # The exception's class only: its text (a URL, a password) goes to the log, masked.
    assert search["output"] == "ConnectionError"
    assert body["checks"]["disk:utilization"][0]["observedUnit"] == "percent"
    print(json.dumps(body, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
