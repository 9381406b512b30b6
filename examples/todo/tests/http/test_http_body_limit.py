"""Bodies over the limit are answered 413 problem+json, without being read.

The streamed cases run behind a real uvicorn, talked to over a raw socket, so the
test controls exactly which bytes of the body were sent when the answer came.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from http_support import uvicorn_serving
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from todo.http import (
    PROBLEM_MEDIA_TYPE,
    BodySizeLimitMiddleware,
    UnhandledErrorMiddleware,
    problem_handlers,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Message

LIMIT = 4096
CHUNK = b"x" * 1024


class Calls:
    """How often the endpoints ran."""

    measured = 0
    ignored = 0


async def measure(request: Request) -> Response:
    """Read the whole body and say how long it was."""
    body = await request.body()
    Calls.measured += 1
    return JSONResponse({"length": len(body)})


async def ignore(request: Request) -> Response:
    """Never read the body (Starlette's own limit would let this run)."""
    Calls.ignored += 1
    return JSONResponse({})


def build_app(*, handlers: bool = True) -> Starlette:
    """The two endpoints behind the limit, with or without the problem handlers."""
    return Starlette(
        routes=[
            Route("/measure", measure, methods=["POST"]),
            Route("/ignore", ignore, methods=["POST"]),
        ],
        middleware=[
            Middleware(UnhandledErrorMiddleware),
            Middleware(BodySizeLimitMiddleware, max_bytes=LIMIT),
        ],
        exception_handlers=problem_handlers() if handlers else {},
    )


@pytest.fixture(autouse=True)
def no_calls_yet() -> None:
    """Count calls from zero in each test."""
    Calls.measured = Calls.ignored = 0


class Answer(msgspec.Struct):
    """A parsed HTTP/1.1 response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded."""
        return msgspec.json.decode(self.body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """Read one response with a Content-Length from the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    body = await reader.readexactly(int(headers["content-length"]))
    return Answer(int(status_line.split()[1]), headers, body)


def request_head(path: str, length_header: str) -> bytes:
    """A POST's request line and headers."""
    return f"POST {path} HTTP/1.1\r\nhost: test\r\n{length_header}\r\n\r\n".encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def assert_too_large(answer: Answer) -> None:
    """The 413 problem, asking to close the connection."""
    assert answer.status == 413
    assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert answer.headers["connection"] == "close"
    assert answer.json() == {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"The request body is larger than {LIMIT} bytes.",
        "max_bytes": LIMIT,
    }


@pytest.mark.parametrize("path", ["/measure", "/ignore"])
async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    path: str,
) -> None:
    """A declared length over the limit is refused before the body is sent."""
    async with uvicorn_serving(build_app()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head(path, "content-length: 1000000000"))  # and not one byte more
        assert_too_large(await read_answer(reader))
        assert await reader.read() == b""  # then the server closed the connection
        writer.close()
    assert (Calls.measured, Calls.ignored) == (0, 0)


async def test_a_chunked_body_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    """A chunked body is refused at the chunk that crosses the limit."""
    async with uvicorn_serving(build_app()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head("/measure", "transfer-encoding: chunked"))
        writer.write(chunk(CHUNK) * (LIMIT // len(CHUNK) + 1))  # the body goes on: no last chunk
        assert_too_large(await read_answer(reader))
        assert await reader.read() == b""
        writer.close()
    assert Calls.measured == 0


@pytest.mark.parametrize("handlers", [True, False])
async def test_a_chunked_body_within_the_limit_is_served(handlers: bool) -> None:
    """A chunked body within the limit is served."""
    async with uvicorn_serving(build_app(handlers=handlers)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_head("/measure", "transfer-encoding: chunked"))
        writer.write(chunk(CHUNK) * (LIMIT // len(CHUNK)) + b"0\r\n\r\n")
        answer = await read_answer(reader)
        writer.close()
    assert answer.status == 200
    assert answer.json() == {"length": LIMIT}


@pytest.mark.parametrize("handlers", [True, False])
@pytest.mark.parametrize(
    ("http_version", "headers"),
    [("1.1", [(b"transfer-encoding", b"chunked")]), ("2", [])],  # HTTP/2 needs no header
)
async def test_no_more_than_the_crossing_chunk_is_ever_read(
    handlers: bool, http_version: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """No more than the crossing chunk is ever read, with or without the handlers."""
    reads = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": CHUNK, "more_body": True}  # an endless body

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "http_version": http_version,
        "method": "POST",
        "path": "/measure",
        "headers": headers,
        "query_string": b"",
    }
    await build_app(handlers=handlers)(scope, receive, send)
    assert reads == LIMIT // len(CHUNK) + 1
    assert sent[0]["status"] == 413


def test_a_negative_limit_is_refused() -> None:
    """A negative limit is refused."""
    with pytest.raises(ValueError, match="max_bytes"):
        BodySizeLimitMiddleware(build_app(), max_bytes=-1)
