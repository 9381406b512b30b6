"""The pools in a Starlette app's lifespan: on their own, composed, and under scalepy.health."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from scalepy.health import Health
from scalepy.pools import PoolManager
from scalepy.testing import asgi_request

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from starlette.requests import Request
    from starlette.routing import BaseRoute

    Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def make_app(pools: PoolManager, lifespan: Lifespan, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """An app with one endpoint reading through the pools."""

    async def now(request: Request) -> JSONResponse:
        value = await pools.postgres.fetchval("SELECT extract(year FROM now())", read_only=True)
        return JSONResponse({"year": int(value)})

    return Starlette(routes=[Route("/now", now), *routes], lifespan=lifespan)


async def serve(app: Starlette, *paths: str) -> list[int]:
    """What an ASGI server does: run the lifespan around the requests."""
    async with app.router.lifespan_context(app):
        return [(await asgi_request(app, path)).status for path in paths]


async def main() -> None:
    """Three ways to tie the pools to an app's life."""
    # 1. On their own: opened at startup, closed (drained) at shutdown.
    pools = PoolManager(postgres=DATABASE_URL, redis=REDIS_URL)
    assert await serve(make_app(pools, pools.lifespan), "/now") == [200]

    # 2. Composed into a lifespan of your own, e.g. to create the schema first.
    pools = PoolManager(postgres=DATABASE_URL)

    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        async with pools.lifespan(app):
            await pools.postgres.execute("CREATE TEMP TABLE IF NOT EXISTS seen (at timestamptz)")
            yield

    assert await serve(make_app(pools, lifespan), "/now") == [200]

    # 3. Under scalepy.health: readiness checks every pool; at shutdown readiness
    #    fails first, then the pools close (a PoolManager is a resource like any other).
    pools = PoolManager(postgres=DATABASE_URL, redis=REDIS_URL, close_timeout=5.0)
    health = Health(checks=pools.health_checks())
    app = make_app(pools, health.lifespan(resources=[pools]), health.routes())
    assert await serve(app, "/health/ready", "/now") == [200, 200]
    assert health.draining


if __name__ == "__main__":
    asyncio.run(main())
