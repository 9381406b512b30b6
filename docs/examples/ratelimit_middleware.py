"""RateLimitMiddleware on a Starlette app and on a raw ASGI app, driven in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from scalepy.ratelimit import GCRA, RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import EXEMPT, RateLimitMiddleware, client_ip, header_key
from scalepy.testing import FakeClock, asgi_request

if TYPE_CHECKING:
    from starlette.requests import Request

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def call(
    app: ASGIApp, path: str, *, peer: str = "203.0.113.7", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send one GET through `app` in-process (scalepy.testing.asgi_request)."""
    response = await asgi_request(app, path, peer=peer, headers=list((headers or {}).items()))
    return response.status, dict(response.headers), response.body


async def home(request: Request) -> PlainTextResponse:
    """Any endpoint."""
    return PlainTextResponse(f"hello {request.url.path}")


async def starlette_app(clock: FakeClock) -> None:
    """Per-IP limits, a stricter route, an exemption, and the exact headers sent."""
    app = Starlette(routes=[Route(path, home) for path in ("/", "/login", "/health")])
    app.add_middleware(
        RateLimitMiddleware,
        limiter=RateLimiter("memory://", clock=clock),
        policy=TokenBucket(capacity=2, refill_rate=1.0, name="default"),
        key=client_ip(trusted_proxies=["10.0.0.0/8"]),  # X-Forwarded-For only from these
        routes={"/login": GCRA(limit=1, period=60, name="login")},
        exempt=["/health"],
    )

    status, headers, _ = await call(app, "/")
    assert status == 200
    assert headers["ratelimit-policy"] == '"default";q=2;w=2'  # quota 2 per 2 s window
    assert headers["ratelimit"] == '"default";r=1;t=1'  # 1 left, whole again in 1 s
    assert (await call(app, "/"))[1]["ratelimit"] == '"default";r=0;t=2'

    status, headers, body = await call(app, "/")  # the third: 429, the app never runs
    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "1"
    assert headers["ratelimit"] == '"default";r=0;t=1'
    assert json.loads(body) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit exceeded; retry in 1 s.",
        "retry_after": 1,
    }

    # A client cannot escape by writing X-Forwarded-For: only trusted proxies are believed.
    spoofed = {"x-forwarded-for": "192.0.2.99"}
    assert (await call(app, "/", headers=spoofed))[0] == 429  # still 203.0.113.7
    via_proxy = {"x-forwarded-for": "203.0.113.7, 10.0.0.9"}
    assert (await call(app, "/", peer="10.0.0.5", headers=via_proxy))[0] == 429
    assert (await call(app, "/", peer="10.0.0.5", headers={"x-forwarded-for": "192.0.2.1"}))[
        0
    ] == 200

    # /login has a quota of its own; /health is never limited and gets no headers.
    assert (await call(app, "/login"))[0] == 200
    status, headers, _ = await call(app, "/login")
    assert (status, headers["retry-after"]) == (429, "60")
    status, headers, _ = await call(app, "/health")
    assert status == 200
    assert "ratelimit" not in headers

    clock.advance(1)  # a token is back
    assert (await call(app, "/"))[0] == 200


async def raw_app(clock: FakeClock) -> None:
    """Any ASGI callable works; here keyed by API key, with the legacy headers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    api_key = header_key("x-api-key")  # hashed: the key never reaches the backend
    limited = RateLimitMiddleware(
        app,
        limiter=RateLimiter("memory://", clock=clock),
        policy=GCRA(limit=100, period=60),  # unnamed: shown as "p0"
        # Requests without an API key are let through on purpose. Without `or EXEMPT`
        # they would share one quota (the key function returns None: no identity).
        key=lambda scope: api_key(scope) or EXEMPT,
        legacy_headers=True,
    )
    status, headers, body = await call(limited, "/", headers={"x-api-key": "secret"})
    assert (status, body) == (200, b"ok")
    assert headers["ratelimit-policy"] == '"p0";q=100;w=60'
    assert headers["x-ratelimit-limit"] == "100"
    assert headers["x-ratelimit-remaining"] == "99"
    assert headers["x-ratelimit-reset"] == "1"  # seconds from now, rounded up

    # No API key: the key function returns EXEMPT, so the request is not limited.
    assert (await call(limited, "/"))[1] == {}


async def main() -> None:
    """Run both demonstrations."""
    await starlette_app(FakeClock())
    await raw_app(FakeClock())


if __name__ == "__main__":
    asyncio.run(main())
