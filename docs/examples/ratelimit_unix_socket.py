"""Behind nginx on a Unix socket (`uvicorn --uds`): trust the socket, key by X-Forwarded-For."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import UNIDENTIFIED, RateLimitMiddleware, client_ip
from scalepy.testing import FakeClock, asgi_request

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Recording(logging.Handler):
    """Keeps the messages logged to it."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's message."""
        self.messages.append(record.getMessage())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Any ASGI application."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def over_unix_socket(asgi: ASGIApp) -> ASGIApp:
    """What uvicorn --uds passes on: a scope whose `client` is None (no peer address)."""

    async def unix(scope: Scope, receive: Receive, send: Send) -> None:
        await asgi({**scope, "client": None}, receive, send)

    return unix


async def status(asgi: ASGIApp, forwarded_for: str) -> int:
    """One request as nginx forwards it, naming the client in X-Forwarded-For."""
    response = await asgi_request(asgi, "/", headers=[("x-forwarded-for", forwarded_for)])
    return response.status


async def main() -> None:
    """Trusted socket: a quota per client. Untrusted: one shared quota and a warning."""
    policy = TokenBucket(capacity=2, refill_rate=1.0)
    trusted = over_unix_socket(
        RateLimitMiddleware(
            app,
            limiter=RateLimiter("memory://", clock=FakeClock()),
            policy=policy,
            # "unix": the peer on the socket is our proxy; believe its X-Forwarded-For.
            key=client_ip(trusted_proxies=["unix"]),
        )
    )
    assert [await status(trusted, "192.0.2.1") for _ in range(3)] == [200, 200, 429]
    assert await status(trusted, "192.0.2.2") == 200  # another client: its own quota

    # Without "unix" the request has no client address. It is never let through
    # unlimited: every such request shares the quota of the key UNIDENTIFIED, and the
    # first one logs a warning on the "scalepy.ratelimit" logger.
    warnings = Recording()
    logging.getLogger("scalepy.ratelimit").addHandler(warnings)
    untrusted = over_unix_socket(
        RateLimitMiddleware(app, limiter=RateLimiter("memory://", clock=FakeClock()), policy=policy)
    )
    statuses = [await status(untrusted, f"192.0.2.{n}") for n in range(3)]
    assert statuses == [200, 200, 429]  # three clients, one quota
    assert len(warnings.messages) == 1
    assert repr(UNIDENTIFIED) in warnings.messages[0]


if __name__ == "__main__":
    asyncio.run(main())
