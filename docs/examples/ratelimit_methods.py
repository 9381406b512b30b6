"""RateLimitMiddleware(methods=...): a stricter quota for writes, decided with the request quota."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from scalepy.ratelimit import FixedWindow, RateLimiter
from scalepy.ratelimit.asgi import RateLimitMiddleware
from scalepy.testing import FakeClock, asgi_request


async def todos(request: object) -> PlainTextResponse:
    """Any endpoint, reads and writes."""
    return PlainTextResponse("ok")


async def main() -> None:
    """Five requests a minute per client, two of them writes: one middleware, one call each."""
    writes = FixedWindow(limit=2, window=60, name="writes")
    app = RateLimitMiddleware(
        Starlette(routes=[Route("/todos", todos, methods=["GET", "POST", "DELETE"])]),
        limiter=RateLimiter("memory://", clock=FakeClock()),
        policy=FixedWindow(limit=5, window=60, name="requests"),
        methods={"POST": writes, "PUT": writes, "PATCH": writes, "DELETE": writes},
    )

    # A write is decided under both policies at once, and its response shows both.
    write = await asgi_request(app, "/todos", method="POST")
    assert write.status == 200
    assert write.header("ratelimit-policy") == '"requests";q=5;w=60, "writes";q=2;w=60'
    assert write.header("ratelimit") == '"requests";r=4;t=60, "writes";r=1;t=60'

    # A read only under the policy for every request.
    read = await asgi_request(app, "/todos")
    assert read.header("ratelimit") == '"requests";r=3;t=60'

    # The second write uses up the write quota: the third is 429, and takes nothing
    # from the request quota (all or nothing), so reads go on.
    assert (await asgi_request(app, "/todos", method="DELETE")).status == 200
    denied = await asgi_request(app, "/todos", method="POST")
    assert (denied.status, denied.header("retry-after")) == (429, "60")
    assert denied.header("ratelimit") == '"requests";r=2;t=60, "writes";r=0;t=60'
    assert [(await asgi_request(app, "/todos")).status for _ in range(3)] == [200, 200, 429]


if __name__ == "__main__":
    asyncio.run(main())
