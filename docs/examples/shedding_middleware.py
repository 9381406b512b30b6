"""Load shedding for a Starlette app: after the rate limiter, probes never shed, 503 when over."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware
from scalepy.shedding import AIMD, LoadShedder, LoadShedMiddleware, Priority
from scalepy.testing import asgi_request

if TYPE_CHECKING:
    from starlette.requests import Request

    from scalepy._asgi import Scope

started = asyncio.Event()
release = asyncio.Event()


async def report(request: Request) -> PlainTextResponse:
    """An expensive page: it holds its slot until released."""
    started.set()
    await release.wait()
    return PlainTextResponse("report")


async def ready(request: Request) -> PlainTextResponse:
    """The readiness probe."""
    return PlainTextResponse("ready")


def classify(scope: Scope) -> Priority:
    """Reports are LOW, writes HIGH, the rest NORMAL; any header or tenant works too."""
    if scope["path"].startswith("/reports"):
        return Priority.LOW
    return Priority.HIGH if scope["method"] in ("POST", "PUT", "PATCH") else Priority.NORMAL


async def main() -> None:
    """One slot, no line: a second request is shed with 503; the probe still answers."""
    shedder = LoadShedder("web", limit=AIMD(initial_limit=1, max_limit=1), max_queue=0)
    app = Starlette(
        routes=[Route("/reports", report), Route("/health/ready", ready)],
        middleware=[
            # Outermost first: abusers are refused by the rate limiter before they count.
            Middleware(
                RateLimitMiddleware,
                limiter=RateLimiter("memory://"),
                policy=TokenBucket(capacity=100, refill_rate=50.0),
                exempt=["/health", "/metrics"],
            ),
            Middleware(LoadShedMiddleware, shedder=shedder, classify=classify),
        ],
    )
    slow = asyncio.create_task(asgi_request(app, "/reports"))
    await started.wait()  # the slow request holds the only slot

    shed = await asgi_request(app, "/reports")
    assert shed.status == 503
    assert shed.header("retry-after") == "1"
    assert shed.header("content-type") == "application/problem+json"
    assert json.loads(shed.body)["title"] == "Service Unavailable"

    probe = await asgi_request(app, "/health/ready")  # never shed
    assert (probe.status, probe.body) == (200, b"ready")

    release.set()
    assert (await slow).status == 200
    assert shedder.statistics().shed["low"] == 1


if __name__ == "__main__":
    asyncio.run(main())
