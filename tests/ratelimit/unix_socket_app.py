"""The application `test_unix_socket.py` serves with a real uvicorn on a Unix socket.

`uvicorn --factory tests.ratelimit.unix_socket_app:build --uds PATH`; with
`SCALEPY_TEST_TRUST_UNIX=1` in the environment the key trusts the Unix-socket peer
(`client_ip(trusted_proxies=["unix"])`), otherwise it is the default `client_ip()`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware, client_ip

if TYPE_CHECKING:
    # scalepy's own ASGI type aliases (ASGI is a convention; scalepy exports no types for it).
    from scalepy._asgi import Receive, Scope, Send

PAIR = TokenBucket(capacity=2, refill_rate=0.01, name="pair")
"""Two requests at once, then one per 100 s: a test never sees a refill."""


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request 200 "hello"."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def build() -> RateLimitMiddleware:
    """The limited application, configured from the environment."""
    trusted = ["unix"] if os.environ.get("SCALEPY_TEST_TRUST_UNIX") == "1" else []
    return RateLimitMiddleware(
        hello,
        limiter=RateLimiter("memory://"),
        policy=PAIR,
        key=client_ip(trusted_proxies=trusted),
    )
