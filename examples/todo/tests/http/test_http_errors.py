"""Every way a request can fail is answered application/problem+json."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx
import msgspec
import pytest
from http_support import uvicorn_serving
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from scalepy.breaker import CircuitBreaker
from scalepy.bulkhead import Bulkhead
from scalepy.errors import BackendUnavailable, CircuitOpenError, PoolTimeoutError
from scalepy.ratelimit import GCRA, RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware
from scalepy.testing import FakeClock
from todo.http import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    ProblemDetails,
    RequestIdMiddleware,
    UnhandledErrorMiddleware,
    problem_for,
    problem_handlers,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx2
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Message


class Item(msgspec.Struct, forbid_unknown_fields=True):
    """A request body with a nested list, to show field pointers."""

    title: str
    tags: list[str] = []


async def create(request: Request) -> Response:
    """Decode the body strictly; msgspec's errors are left to the handlers."""
    item = msgspec.json.decode(await request.body(), type=Item)
    return JSONResponse({"title": item.title}, status_code=201)


async def missing(request: Request) -> Response:
    """Raise the app's own error type."""
    raise Problem(404, "No todo 42.", type="https://example.com/not-found", todo_id=42)


async def crash(request: Request) -> Response:
    """Fail the way a bug does."""
    raise RuntimeError("secret connection string in the message")


async def crash_mid_stream(request: Request) -> Response:
    """Fail after the response started."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("mid-stream")

    return StreamingResponse(chunks())


breaker = CircuitBreaker("postgres", minimum_calls=1, open_for=30.0, clock=FakeClock())


@breaker
async def query() -> None:
    """A database call that fails."""
    raise ConnectionError("refused")


async def through_breaker(request: Request) -> Response:
    """Call the database through the breaker."""
    await query()
    return JSONResponse({})


async def unavailable(request: Request) -> Response:
    """Raise one of the 503 errors the route names."""
    kind = request.path_params["kind"]
    if kind == "pool":
        raise PoolTimeoutError("primary", 2.0)
    if kind == "backend":
        raise BackendUnavailable("connection refused", backend="redis://127.0.0.1:6379/0")
    bulkhead = Bulkhead("reports", max_concurrent=1, max_wait=0.0)
    async with bulkhead, bulkhead:
        pass
    return JSONResponse({})


limiter = RateLimiter("memory://", clock=FakeClock())
REPORTS = GCRA(limit=1, period=2.0)


@limiter.limit(REPORTS, key="reports")
async def build_report() -> str:
    """Work limited by a decorator, inside a handler."""
    return "report"


async def report(request: Request) -> Response:
    """Call the limited work; `?cost=` asks the limiter for more than one token."""
    if cost := int(request.query_params.get("cost", 0)):
        await limiter.acquire("bulk", REPORTS, cost=cost)
    return JSONResponse(await build_report())


def build_app() -> Starlette:
    """The Todo API's error set-up around routes that fail in every way."""
    return Starlette(
        routes=[
            Route("/items", create, methods=["POST"]),
            Route("/missing", missing),
            Route("/crash", crash),
            Route("/crash-mid-stream", crash_mid_stream),
            Route("/db", through_breaker),
            Route("/unavailable/{kind}", unavailable),
            Route("/report", report),
        ],
        middleware=[Middleware(RequestIdMiddleware), Middleware(UnhandledErrorMiddleware)],
        exception_handlers=problem_handlers(),
    )


@pytest.fixture
def client() -> TestClient:
    """A client of `build_app()`."""
    return TestClient(build_app())


def problem(response: httpx2.Response) -> dict[str, object]:
    """The problem body, after checking the media type and the RFC members."""
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, object] = msgspec.json.decode(response.content)
    details = msgspec.convert(body, ProblemDetails)  # the OpenAPI schema accepts it
    assert response.status_code == details.status
    return body


def test_a_raised_problem_keeps_its_members(client: TestClient) -> None:
    """A raised problem keeps its members."""
    response = client.get("/missing")
    assert response.status_code == 404
    assert problem(response) == {
        "type": "https://example.com/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No todo 42.",
        "todo_id": 42,
    }


def test_an_unknown_route_is_404(client: TestClient) -> None:
    """An unknown route is 404."""
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert problem(response) == {"type": "about:blank", "title": "Not Found", "status": 404}


def test_a_wrong_method_is_405_with_allow(client: TestClient) -> None:
    """A wrong method is 405 with allow."""
    response = client.delete("/items")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert problem(response)["title"] == "Method Not Allowed"


def test_malformed_json_is_400(client: TestClient) -> None:
    """Malformed json is 400."""
    response = client.post("/items", content=b'{"title": ]}')
    assert response.status_code == 400
    assert "JSON is malformed" in str(problem(response)["detail"])


@pytest.mark.parametrize(
    ("body", "detail", "pointer"),
    [
        (b'{"title": 5}', "Expected `str`, got `int`", "#/title"),
        (b'{"title": "a", "tags": ["x", 3]}', "Expected `str`, got `int`", "#/tags/1"),
        (b"{}", "Object missing required field `title`", "#"),
        (b'{"title": "a", "done": 1}', "Object contains unknown field `done`", "#"),
    ],
)
def test_a_body_of_the_wrong_shape_is_422_with_a_pointer(
    client: TestClient, body: bytes, detail: str, pointer: str
) -> None:
    """A body of the wrong shape is 422 with a pointer."""
    response = client.post("/items", content=body)
    assert response.status_code == 422
    answer = problem(response)
    assert answer["title"] == "Unprocessable Content"
    assert [{"detail": detail, "pointer": pointer}] == answer["errors"]


def test_a_path_through_a_mapping_has_no_pointer() -> None:
    """A path through a mapping has no pointer."""
    try:
        msgspec.convert({"a": {"b": "x"}}, dict[str, dict[str, int]])
    except msgspec.ValidationError as exc:
        answer = problem_for(exc)
    assert answer.status == 422
    assert answer.extensions["errors"] == [{"detail": "Expected `int`, got `str`"}]


def test_an_open_breaker_is_503_with_retry_after(client: TestClient) -> None:
    """An open breaker is 503 with retry after."""
    assert client.get("/db").status_code == 500  # the failure itself is a bug-shaped 500
    response = client.get("/db")  # now the breaker rejects without calling
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    answer = problem(response)
    assert answer["breaker"] == "postgres"  # tells a paused dependency from a failing one
    assert "postgres" in str(answer["detail"])


@pytest.mark.parametrize(("retry_after", "header"), [(0.0, "1"), (0.2, "1"), (2.5, "3")])
def test_every_breaker_503_says_when_to_retry_at_least_a_second_ahead(
    retry_after: float, header: str
) -> None:
    """A breaker whose half-open trial is running rejects with no wait of its own (0).

    Its 503 still carries `Retry-After` (whole seconds, at least 1), as every other
    breaker 503 does: under load, the requests that met the trial in flight answered
    503 without it.
    """
    problem = problem_for(CircuitOpenError("postgres", retry_after))
    assert (503, header) == (problem.status, problem.headers["Retry-After"])


@pytest.mark.parametrize("kind", ["pool", "backend", "bulkhead"])
def test_an_unavailable_dependency_is_503(client: TestClient, kind: str) -> None:
    """An unavailable dependency is 503."""
    response = client.get(f"/unavailable/{kind}")
    assert response.status_code == 503
    assert "retry-after" not in response.headers  # no honest estimate to give
    assert problem(response)["title"] == "Service Unavailable"


def test_a_rate_limit_inside_a_handler_is_429_with_retry_after(client: TestClient) -> None:
    """A decorator's RateLimitExceeded is 429; a cost no wait can allow is 413."""
    assert client.get("/report").status_code == 200
    limited = client.get("/report")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert problem(limited)["title"] == "Too Many Requests"
    too_costly = client.get("/report?cost=5")
    assert too_costly.status_code == 413
    assert "can never be allowed" in str(problem(too_costly)["detail"])


def test_a_bug_is_500_without_trace_and_logged_once_with_the_request_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug is 500 without trace and logged once with the request id."""
    with caplog.at_level(logging.ERROR):
        response = client.get("/crash", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-1"
    assert problem(response) == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The server failed to answer this request.",
        "request_id": "req-1",
    }
    [record] = caplog.records
    assert record.name == "todo.http"
    assert "req-1" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_a_client_that_leaves_before_its_body_is_not_answered_nor_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Wrk stopping mid-POST: the body never comes, `receive` says the client is gone.

    Nothing is sent (nobody would read it) and nothing is logged at ERROR: the client's
    leaving is not a bug of the server.
    """
    sent: list[Message] = []

    async def gone() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/items", "raw_path": b"/items", "root_path": "",
        "query_string": b"", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    with caplog.at_level(logging.WARNING):
        await build_app()(scope, gone, send)
    assert ([], []) == (sent, caplog.records)


def test_a_failure_after_the_response_started_is_logged_and_not_answered_twice(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure after the response started is logged and not answered twice."""
    with caplog.at_level(logging.ERROR):
        response = client.get("/crash-mid-stream")
    assert response.status_code == 200
    assert response.content == b"partial"
    [record] = caplog.records
    assert "/crash-mid-stream" in record.getMessage()


async def test_behind_uvicorn_a_failure_mid_stream_cuts_the_response_and_logs_one_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Behind uvicorn, the client sees a cut response; one traceback is logged, ours."""
    async with uvicorn_serving(build_app()) as port:
        with caplog.at_level(logging.ERROR):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as session:
                with pytest.raises(httpx.RemoteProtocolError):
                    await session.get("/crash-mid-stream")
    traced = [record for record in caplog.records if record.exc_info]
    assert [record.name for record in traced] == ["todo.http"]
    assert "returned without completing response" in caplog.text  # uvicorn: one line, no trace


def test_http_exception_detail_is_kept_when_it_says_more(client: TestClient) -> None:
    """Http exception detail is kept when it says more."""

    async def teapot(request: Request) -> Response:
        raise HTTPException(409, "Version 3 is stale.")

    app = Starlette(routes=[Route("/", teapot)], exception_handlers=problem_handlers())
    response = TestClient(app).get("/")
    assert problem(response) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "Version 3 is stale.",
    }


def test_the_rate_limit_middleware_answers_a_compatible_problem() -> None:
    """The rate limit middleware answers a compatible problem."""

    async def home(request: Request) -> Response:
        return JSONResponse({})

    app = Starlette(routes=[Route("/", home)])
    app.add_middleware(
        RateLimitMiddleware,
        limiter=RateLimiter("memory://", clock=FakeClock()),
        policy=TokenBucket(capacity=1, refill_rate=0.5),
    )
    client = TestClient(app)
    assert client.get("/").status_code == 200
    response = client.get("/")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert problem(response)["title"] == "Too Many Requests"


def test_a_problem_refuses_a_success_status() -> None:
    """A problem refuses a success status."""
    with pytest.raises(ValueError, match="400-599"):
        Problem(200)
