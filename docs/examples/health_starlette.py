"""Health endpoints in a Starlette app, with the lifespan helper opening and closing Redis."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from scalepy.backends.redis import RedisClient
from scalepy.health import Health, redis_check
from scalepy.testing import asgi_request

if TYPE_CHECKING:
    from starlette.requests import Request

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

redis = RedisClient.from_url(REDIS_URL)
health = Health(checks=[redis_check(redis)], drain_delay=15.0)


async def todos(request: Request) -> JSONResponse:
    """The application's own endpoint."""
    return JSONResponse([])


app = Starlette(
    routes=[Route("/todos", todos), *health.routes()],
    # Startup: open the resources, then mark_started(). Shutdown: readiness fails,
    # consumers stop, resources close (reverse order), each step with a deadline.
    lifespan=health.lifespan(resources=[redis]),
)

# Or, for any ASGI framework (FastAPI: app.mount("/", health.asgi)):
mounted = Starlette(routes=[Route("/todos", todos), Mount("/", app=health.asgi)])


async def main() -> None:
    """Serve a few requests inside the app's lifespan."""
    async with app.router.lifespan_context(app):
        assert (await asgi_request(app, "/health/startup")).status == 200
        assert (await asgi_request(app, "/health/ready")).status == 200
        assert (await asgi_request(app, "/todos")).status == 200
        assert app.url_path_for("health_ready") == "/health/ready"
        assert (await asgi_request(mounted, "/health/live")).status == 200
    assert health.draining  # the shutdown ran: readiness fails from now on


if __name__ == "__main__":
    asyncio.run(main())
