"""Liveness, readiness and startup over the real Redis and PostgreSQL, and the details."""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg

from scalepy.backends.redis import RedisClient
from scalepy.health import (
    Health,
    LoopLagMonitor,
    event_loop_check,
    postgres_check,
    redis_check,
)
from scalepy.testing import asgi_request

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "SCALEPY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


async def main() -> None:
    """Ask each endpoint, before and after startup completed."""
    async with (
        RedisClient.from_url(REDIS_URL) as redis,
        asyncpg.create_pool(POSTGRES_DSN, min_size=1, max_size=4) as pool,
    ):
        monitor = LoopLagMonitor()  # liveness and the eventLoop check read the same one
        health = Health(
            checks=[
                redis_check(redis, timeout=0.5),
                postgres_check(pool, timeout=0.5, component_id="primary"),
                event_loop_check(monitor, warn_above=0.1, fail_above=1.0),
            ],
            loop_monitor=monitor,
            service_id="todo",
            release_id="1.4.2",
            public_details=True,  # only for a port the outside world cannot reach
        )
        async with health:  # runs the event-loop lag monitor
            # Until startup completed, startup and readiness fail; liveness passes.
            for path, status in [
                ("/health/live", 200),
                ("/health/startup", 503),
                ("/health/ready", 503),
            ]:
                assert (await asgi_request(health.asgi, path)).status == status

            health.mark_started()  # or let health.lifespan() do it

            ready = await asgi_request(health.asgi, "/health/ready")
            assert ready.status == 200
            assert ready.header("content-type") == "application/health+json"
            assert json.loads(ready.body) == {"status": "pass"}  # probes get the status only

            # The details name each check, never a server's URL or a driver's message.
            details = json.loads((await asgi_request(health.asgi, "/health")).body)
            assert details["serviceId"] == "todo"
            assert sorted(details["checks"]) == [
                "eventLoop:lag",
                "postgres:responseTime",
                "postgres:utilization",
                "redis:responseTime",
            ]
            redis_entry = details["checks"]["redis:responseTime"][0]
            assert redis_entry["componentType"] == "datastore"
            assert redis_entry["observedUnit"] == "ms"
            assert redis_entry["time"].endswith("Z")  # RFC 3339, UTC
            print(json.dumps(details, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
