"""weather_app.py's endpoint in FastAPI, with the answers checked in-process.

Serve it with:
    REDIS_URL=redis://localhost:6379/0 uvicorn weather_fastapi:create_app --factory
"""

from __future__ import annotations

# --8<-- [start:app]
import os

from fastapi import Depends, FastAPI
from weather_app import fetch_forecast

from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache
from scalepy.health import Health, redis_check
from scalepy.integrations.fastapi import error_responses, install, limit
from scalepy.ratelimit import RateLimiter, TokenBucket

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")


def create_app(
    redis_url: str = REDIS_URL,
    *,
    namespace: str = "weather",
) -> FastAPI:
    """One Redis client, shared by the cache, the limiter and the checks."""
    redis = RedisClient.from_url(redis_url)
    cache = Cache(redis, namespace=namespace)
    limiter = RateLimiter(redis, namespace=namespace)
    health = Health(checks=[redis_check(redis)])
    per_client = TokenBucket(capacity=5, refill_rate=5 / 60, name="per-client")

    app = FastAPI()
    # Health routes, a lifespan opening and closing the resources, and
    # problem+json errors, in one call.
    install(app, health, resources=[redis, cache, limiter])

    @app.get(
        "/forecast/{city}",
        dependencies=[Depends(limit(per_client, limiter=limiter))],
        responses=error_responses(429),  # in the OpenAPI document
    )
    @cache.cached(ttl=60)  # keeps the signature: FastAPI still sees `city`
    async def forecast(city: str) -> dict[str, object]:
        return await fetch_forecast(city)

    return app


# --8<-- [end:app]


def main() -> None:
    """The answers of the Starlette version, headers included, and 429 in the OpenAPI."""
    import uuid

    from fastapi.testclient import TestClient

    app = create_app(REDIS_URL, namespace=f"docs-{uuid.uuid4().hex}")
    with TestClient(app) as client:
        first = client.get("/forecast/oslo")
        assert first.json() == {"city": "oslo", "sky": "sunny", "high_c": 21}
        assert first.headers["ratelimit"] == '"per-client";r=4;t=12'
        assert [client.get("/forecast/oslo").status_code for _ in range(4)] == [200] * 4
        refused = client.get("/forecast/oslo")
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "12")
        assert client.get("/health/ready").status_code == 200
        operation = client.get("/openapi.json").json()["paths"]["/forecast/{city}"]["get"]
        assert "429" in operation["responses"]
        assert [parameter["name"] for parameter in operation["parameters"]] == ["city"]


if __name__ == "__main__":
    main()
