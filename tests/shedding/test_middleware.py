"""`LoadShedMiddleware`, driven in-process through raw ASGI calls."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from scalepy.errors import ConfigurationError
from scalepy.shedding import AIMD, LoadShedder, LoadShedMiddleware, Priority
from scalepy.testing import FakeClock, asgi_request

if TYPE_CHECKING:
    from scalepy._asgi import Receive, Scope, Send


class SlowApp:
    """Answers 200 `ok`; requests to `/slow` wait for `release` first."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.seen: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the scope; answer 200."""
        if scope["type"] != "http":
            self.seen.append(scope["type"])
            return
        self.seen.append(scope["path"])
        if scope["path"] == "/slow":
            self.entered.set()
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def one_slot(**options: object) -> LoadShedder:
    """A shedder running one request at a time, with no line at all."""
    return LoadShedder(
        "http",
        limit=AIMD(initial_limit=1, max_limit=1),
        max_queue=0,
        clock=FakeClock(),
        **options,  # type: ignore[arg-type]
    )


async def busy(app: LoadShedMiddleware, inner: SlowApp) -> asyncio.Task[object]:
    """Start a request holding the only slot; return once it is inside the app."""
    task: asyncio.Task[object] = asyncio.create_task(asgi_request(app, "/slow"))
    await inner.entered.wait()
    return task


async def test_a_shed_request_gets_503_with_retry_after_and_a_problem_body() -> None:
    """Over the limit with no room to wait: 503, `Retry-After`, problem+json; the app never runs."""
    inner = SlowApp()
    app = LoadShedMiddleware(inner, shedder=one_slot())
    holder = await busy(app, inner)
    response = await asgi_request(app, "/todos")
    assert 503 == response.status
    assert "1" == response.header("retry-after")
    assert "application/problem+json" == response.header("content-type")
    body = json.loads(response.body)
    assert {"type": "about:blank", "title": "Service Unavailable", "status": 503} == {
        key: body[key] for key in ("type", "title", "status")
    }
    assert 1 == body["retry_after"]
    assert "queue_full" in body["detail"]
    assert ["/slow"] == inner.seen
    inner.release.set()
    assert 200 == (await holder).status  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/metrics"])
async def test_probes_and_metrics_are_never_shed(path: str) -> None:
    """With the only slot taken, health probes and `/metrics` still reach the app."""
    inner = SlowApp()
    app = LoadShedMiddleware(inner, shedder=one_slot())
    holder = await busy(app, inner)
    assert 200 == (await asgi_request(app, path)).status
    assert 503 == (await asgi_request(app, "/healthz")).status  # a whole segment only
    inner.release.set()
    await holder


async def test_the_classifier_decides_the_priority_class() -> None:
    """A request the classifier calls CRITICAL bypasses the limit; others are shed."""
    inner = SlowApp()

    def classify(scope: Scope) -> Priority:
        return Priority.CRITICAL if scope["method"] == "OPTIONS" else Priority.LOW

    shedder = one_slot()
    app = LoadShedMiddleware(inner, shedder=shedder, classify=classify, never_shed=[])
    holder = await busy(app, inner)
    assert 200 == (await asgi_request(app, "/todos", method="OPTIONS")).status
    assert 503 == (await asgi_request(app, "/metrics")).status  # nothing exempt any more
    assert {"low": 1, "normal": 0, "high": 0} == shedder.statistics().shed
    inner.release.set()
    await holder


async def test_the_slot_is_released_when_the_app_raises() -> None:
    """An exception from the app propagates and frees the slot for the next request."""
    shedder = one_slot()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await asgi_request(LoadShedMiddleware(broken, shedder=shedder), "/")
    assert 0 == shedder.statistics().in_flight


async def test_other_scopes_pass_through() -> None:
    """Lifespan and WebSocket scopes go to the app untouched, never counted."""
    inner = SlowApp()
    shedder = one_slot()
    app = LoadShedMiddleware(inner, shedder=shedder)

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        return None

    await app({"type": "lifespan"}, receive, send)
    assert ["lifespan"] == inner.seen
    assert 0 == shedder.statistics().in_flight


@pytest.mark.parametrize(
    ("never_shed", "message"),
    [("/health", "never_shed must be a list of paths"), (["health"], "must start with '/'")],
)
def test_refuses_bad_paths(never_shed: object, message: str) -> None:
    """`never_shed` must be a list of prefixes starting with `/`."""
    with pytest.raises(ConfigurationError, match=message):
        LoadShedMiddleware(SlowApp(), shedder=one_slot(), never_shed=never_shed)  # type: ignore[arg-type]
