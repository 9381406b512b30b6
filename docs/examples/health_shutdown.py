"""The shutdown timeline: readiness fails, the app keeps serving, consumers stop, pools close."""

from __future__ import annotations

import asyncio
import time

from scalepy.health import Health
from scalepy.testing import asgi_request

started = time.monotonic()
timeline: list[str] = []


def note(event: str) -> None:
    """Record an event with the time since the start, rounded to 0.1 s."""
    timeline.append(f"{time.monotonic() - started:.1f}s {event}")


class Pool:
    """Stands in for a PoolManager or an asyncpg pool: anything with aclose() or close()."""

    async def aclose(self) -> None:
        """Close the pool."""
        note("pool closed")


class Worker:
    """Stands in for a queue worker."""

    async def stop(self) -> None:
        """Stop taking jobs, finish the running ones."""
        await asyncio.sleep(0.1)
        note("worker stopped")


async def main() -> None:
    """A preStop hook drains; the lifespan shutdown then stops the worker and closes the pool."""
    health = Health(drain_delay=0.3)  # in production: a few readiness periods, e.g. 15 s
    lifespan = health.lifespan(resources=[Pool()], consumers=[Worker().stop])

    async with lifespan(object()):  # what Starlette does with Starlette(lifespan=...)
        note(f"ready: {(await asgi_request(health.asgi, '/health/ready')).status}")

        # Kubernetes runs the preStop hook: POST /health/drain, answered after the hold.
        drain = asyncio.ensure_future(asgi_request(health.asgi, "/health/drain", method="POST"))
        await asyncio.sleep(0.1)
        note(f"ready: {(await asgi_request(health.asgi, '/health/ready')).status}")  # 503
        note(f"live: {(await asgi_request(health.asgi, '/health/live')).status}")  # 200
        assert (await drain).status == 200
        note("preStop hook done; SIGTERM: the server stops and runs the lifespan shutdown")

    print("\n".join(timeline))
    assert [line.split(" ", 1)[1] for line in timeline] == [
        "ready: 200",
        "ready: 503",
        "live: 200",
        "preStop hook done; SIGTERM: the server stops and runs the lifespan shutdown",
        "worker stopped",
        "pool closed",
    ]


if __name__ == "__main__":
    asyncio.run(main())
