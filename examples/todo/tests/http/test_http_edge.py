"""`EdgeMiddleware` answers exactly as the stack of the six middleware it stands for."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from todo.http import (
    BodySizeLimitMiddleware,
    CloseWhileDrainingMiddleware,
    EdgeMiddleware,
    Problem,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
    cors_middleware,
    problem_handlers,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    import httpx2
    from starlette.requests import Request
    from starlette.types import Scope

LIMIT = 100
ORIGINS = ["https://todobackend.com"]
ID = {"x-request-id": "req-1"}


async def ok(request: Request) -> Response:
    """A JSON answer with headers of its own."""
    return JSONResponse({"id": 1}, headers={"Location": "/todos/1"})


async def own_policy(request: Request) -> Response:
    """An answer that sets a security header itself (it is kept)."""
    return Response("page", headers={"Content-Security-Policy": "default-src 'self'"})


async def measure(request: Request) -> Response:
    """Read the whole body."""
    return JSONResponse({"length": len(await request.body())})


async def missing(request: Request) -> Response:
    """The app's own error."""
    raise Problem(404, "No todo 42.")


async def bug(request: Request) -> Response:
    """An unexpected error: a 500."""
    raise RuntimeError("a bug")


async def broken_stream(request: Request) -> Response:
    """A failure after the response started."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"["
        raise RuntimeError("mid-stream")

    return StreamingResponse(chunks())


def build(
    draining: Callable[[], bool], *, edge: bool, observe: list[int] | None = None
) -> Starlette:
    """The routes behind the edge, or behind the stack it stands for."""

    def record(scope: Scope, status: int, seconds: float) -> None:
        assert seconds >= 0
        if observe is not None:
            observe.append(status)

    middleware = (
        [
            Middleware(
                EdgeMiddleware,
                max_body_bytes=LIMIT,
                cors_origins=ORIGINS,
                draining=draining,
                observe=record,
            )
        ]
        if edge
        else [
            Middleware(RequestIdMiddleware),
            Middleware(SecurityHeadersMiddleware),
            Middleware(CloseWhileDrainingMiddleware, draining=draining),
            *filter(None, [cors_middleware(ORIGINS)]),
            Middleware(UnhandledErrorMiddleware),
            Middleware(BodySizeLimitMiddleware, max_bytes=LIMIT),
        ]
    )
    return Starlette(
        routes=[
            Route("/ok", ok, methods=["GET", "PATCH"]),
            Route("/own-policy", own_policy),
            Route("/measure", measure, methods=["POST"]),
            Route("/missing", missing),
            Route("/bug", bug),
            Route("/broken-stream", broken_stream),
        ],
        middleware=middleware,
        exception_handlers=problem_handlers(),
    )


def chunked(size: int) -> Iterator[bytes]:
    """A body of unknown length (sent chunked), in chunks of 10 bytes."""
    for _ in range(size // 10):
        yield b"x" * 10


REQUESTS: dict[str, Callable[[TestClient], httpx2.Response]] = {
    "a read": lambda c: c.get("/ok", headers=ID),
    "an allowed origin": lambda c: c.get("/ok", headers={**ID, "origin": ORIGINS[0]}),
    "another origin": lambda c: c.get("/ok", headers={**ID, "origin": "https://evil.example"}),
    "a preflight": lambda c: c.options(
        "/ok",
        headers={**ID, "origin": ORIGINS[0], "access-control-request-method": "PATCH"},
    ),
    "a refused preflight": lambda c: c.options(
        "/ok",
        headers={**ID, "origin": "https://evil.example", "access-control-request-method": "PATCH"},
    ),
    "an app's own security header": lambda c: c.get("/own-policy", headers=ID),
    "a small body": lambda c: c.post("/measure", headers=ID, content=b"x" * 10),
    "a declared length over the limit": lambda c: c.post(
        "/measure", headers=ID, content=b"x" * (LIMIT + 1)
    ),
    "a streamed body over the limit": lambda c: c.post(
        "/measure", headers=ID, content=chunked(LIMIT + 10)
    ),
    "a problem": lambda c: c.get("/missing", headers=ID),
    "no route": lambda c: c.get("/nowhere", headers=ID),
    "a wrong method": lambda c: c.delete("/ok", headers=ID),
    "a bug": lambda c: c.get("/bug", headers=ID),
}


def answer(response: httpx2.Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Everything a client sees of a response, the order of its headers included."""
    return response.status_code, response.headers.raw, response.content


@pytest.mark.parametrize("draining", [False, True])
@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_the_edge_answers_as_the_stacked_middleware(
    request_name: str, draining: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Same status, headers in the same order, body and error logs, draining or not."""
    send = REQUESTS[request_name]
    answers, logs = [], []
    for edge in (False, True):
        caplog.clear()
        app = build(lambda: draining, edge=edge)
        with TestClient(app, raise_server_exceptions=False) as client:
            answers.append(answer(send(client)))
        logs.append([(r.levelno, r.getMessage()) for r in caplog.records if r.name == "todo.http"])
    assert answers[0] == answers[1]
    assert logs[0] == logs[1]
    assert (b"connection", b"close") in answers[1][1] or not draining


def test_a_failure_mid_stream_is_logged_once_as_by_the_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The response started: nothing more is answered, one ERROR is logged."""
    caplog.set_level(logging.ERROR)
    with TestClient(build(lambda: False, edge=True), raise_server_exceptions=False) as client:
        response = client.get("/broken-stream", headers=ID)
    assert response.status_code == 200
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "Unhandled error serving GET /broken-stream (request id req-1)"
    ]


def test_a_new_request_id_is_128_random_bits_in_hex() -> None:
    """A request without an id gets a new one each time, 32 hex digits."""
    with TestClient(build(lambda: False, edge=True)) as client:
        ids = {client.get("/ok").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch("[0-9a-f]{32}", request_id) for request_id in ids)


def test_observe_gets_each_status_answered() -> None:
    """`observe` sees the status of every answer, a 500 and a 413 included."""
    statuses: list[int] = []
    app = build(lambda: False, edge=True, observe=statuses)
    with TestClient(app, raise_server_exceptions=False) as client:
        answered = [send(client).status_code for send in REQUESTS.values()]
    assert statuses == answered


def test_a_negative_body_limit_is_refused() -> None:
    """The limit is checked at start, as `BodySizeLimitMiddleware` checks it."""
    with pytest.raises(ValueError, match="max_body_bytes"):
        EdgeMiddleware(Starlette(), max_body_bytes=-1)
