"""While the replica drains, every response closes its connection; before, none does."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from scalepy.health import Health
from todo.http import CloseWhileDrainingMiddleware


async def test_responses_close_the_connection_once_the_health_drains() -> None:
    """The flag is read per response: the drain takes effect on the next one."""
    health = Health(drain_delay=0)
    app = Starlette(
        routes=[Route("/", lambda request: PlainTextResponse("ok"))],
        middleware=[Middleware(CloseWhileDrainingMiddleware, draining=lambda: health.draining)],
    )
    with TestClient(app) as client:
        before = client.get("/")
        await health.drain()
        after = client.get("/")
    assert "connection" not in before.headers
    assert "close" == after.headers["connection"]
    assert "ok" == after.text
