"""A cached, rate-limited endpoint in Starlette, on Redis, with health probes.

Serve it with:
    REDIS_URL=redis://localhost:6379/0 uvicorn weather_app:create_app --factory
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache
from scalepy.health import Health, redis_check
from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware, client_ip

if TYPE_CHECKING:
    from starlette.requests import Request

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")


async def fetch_forecast(city: str) -> dict[str, object]:
    """The slow part: in a real service, a call to an upstream API."""
    await asyncio.sleep(0.5)
    return {"city": city, "sky": "sunny", "high_c": 21}


def create_app(
    redis_url: str = REDIS_URL,
    *,
    namespace: str = "weather",
) -> Starlette:
    """One Redis client, shared by the cache, the limiter and the checks."""
    redis = RedisClient.from_url(redis_url)  # connects on first use
    cache = Cache(redis, namespace=namespace)
    limiter = RateLimiter(redis, namespace=namespace)
    health = Health(checks=[redis_check(redis)])
    # Per client address: bursts of 5, then 5 a minute; 429 beyond that.
    per_client = TokenBucket(capacity=5, refill_rate=5 / 60, name="per-client")

    @cache.cached(ttl=60)  # every replica shares the entry, for a minute
    async def forecast(city: str) -> dict[str, object]:
        return await fetch_forecast(city)

    async def get_forecast(request: Request) -> JSONResponse:
        return JSONResponse(await forecast(request.path_params["city"]))

    return Starlette(
        routes=[Route("/forecast/{city}", get_forecast), *health.routes()],
        middleware=[
            Middleware(
                RateLimitMiddleware,
                limiter=limiter,
                policy=per_client,
                key=client_ip(),
                exempt=["/health"],  # probes are never limited
            ),
        ],
        # Opens the resources at startup, closes them at shutdown.
        lifespan=health.lifespan(resources=[redis, cache, limiter]),
    )
