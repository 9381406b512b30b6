"""CORS as a Todo-Backend client's browser meets it: real preflights against uvicorn."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx
import pytest
from http_support import uvicorn_serving
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware
from scalepy.testing import FakeClock
from todo.http import (
    PROBLEM_MEDIA_TYPE,
    CrossOriginMiddleware,
    UnhandledErrorMiddleware,
    check_origins,
    cors_middleware,
    problem_handlers,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from starlette.requests import Request
    from starlette.responses import Response

CLIENT = "https://todobackend.com"
STRANGER = "https://evil.example"


async def todos(request: Request) -> Response:
    """A collection answer with the headers a script must be able to read."""
    return JSONResponse([], headers={"Link": '</todos?after=9>; rel="next"'})


async def todo(request: Request) -> Response:
    """An item answer."""
    return JSONResponse({"id": request.path_params["id"]}, headers={"Location": "/todos/1"})


@asynccontextmanager
async def serving(
    origins: Sequence[str], *, rate: float = 100.0
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the Todo routes behind the CORS set-up for `origins`, served by uvicorn.

    The rate limiter sits inside CORS, as in the app: a preflight costs no token,
    and a 429 carries the CORS headers so the browser lets the script read it.
    """
    middleware = [
        *filter(None, [cors_middleware(origins)]),
        Middleware(UnhandledErrorMiddleware),
        Middleware(
            RateLimitMiddleware,
            limiter=RateLimiter("memory://", clock=FakeClock()),
            policy=TokenBucket(capacity=1, refill_rate=rate),
        ),
    ]
    app = Starlette(
        routes=[
            Route("/todos", todos, methods=["GET", "POST", "DELETE"]),
            Route("/todos/{id:int}", todo, methods=["GET", "PATCH", "DELETE"]),
        ],
        middleware=middleware,
        exception_handlers=problem_handlers(),
    )
    async with (
        uvicorn_serving(app) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        yield client


async def preflight(
    client: httpx.AsyncClient, path: str, method: str, *, origin: str = CLIENT
) -> httpx.Response:
    """The OPTIONS a browser sends before a JSON call with a bearer token."""
    return await client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )


@pytest.mark.parametrize(
    ("path", "method"),
    [("/todos", "POST"), ("/todos", "DELETE"), ("/todos/1", "PATCH"), ("/todos/1", "DELETE")],
)
async def test_any_origin_may_preflight_every_todo_backend_call(path: str, method: str) -> None:
    """Any origin may preflight every todo backend call."""
    async with serving(["*"], rate=0.001) as client:
        for _ in range(3):  # preflights cost no token: the limiter allows one call in all
            response = await preflight(client, path, method)
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "*"
            assert method in response.headers["access-control-allow-methods"].split(", ")
            allowed = response.headers["access-control-allow-headers"].lower().split(", ")
            assert {"authorization", "content-type"} <= set(allowed)
            assert response.headers["access-control-max-age"] == "600"
        assert "access-control-allow-credentials" not in response.headers
        assert (await client.get("/todos")).status_code == 200  # the token is still there


async def test_a_script_may_read_the_answer_and_its_headers() -> None:
    """A script may read the answer and its headers."""
    async with serving(["*"]) as client:
        response = await client.get("/todos", headers={"Origin": CLIENT})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = set(response.headers["access-control-expose-headers"].split(", "))
    assert {"Location", "Link", "RateLimit", "RateLimit-Policy", "Retry-After"} <= exposed


async def test_a_request_without_origin_gets_no_cors_header() -> None:
    """A server-side or same-origin caller sends no Origin and gets no CORS header."""
    async with serving(["*"]) as client:
        response = await client.get("/todos")
    assert response.status_code == 200
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert "vary" not in response.headers


async def test_errors_and_rate_limit_answers_carry_the_cors_headers() -> None:
    """Errors and rate limit answers carry the cors headers."""
    async with serving(["*"], rate=0.001) as client:
        missing = await client.get("/nowhere", headers={"Origin": CLIENT})
        limited = await client.get("/todos", headers={"Origin": CLIENT})
    assert (missing.status_code, limited.status_code) == (404, 429)
    for response in (missing, limited):
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.headers["access-control-allow-origin"] == "*"


async def test_a_listed_origin_is_mirrored_and_others_are_refused() -> None:
    """A listed origin is mirrored and others are refused."""
    async with serving([CLIENT]) as client:
        allowed = await preflight(client, "/todos/1", "PATCH")
        refused = await preflight(client, "/todos/1", "PATCH", origin=STRANGER)
        read = await client.get("/todos", headers={"Origin": STRANGER})
        listed = await client.get("/todos", headers={"Origin": CLIENT})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CLIENT
    assert "Origin" in allowed.headers["vary"]
    assert listed.headers["access-control-allow-origin"] == CLIENT
    assert listed.headers["vary"] == "Origin"
    assert "Location" in listed.headers["access-control-expose-headers"]
    assert refused.status_code == 400
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert refused.json()["detail"] == "Disallowed CORS origin."
    assert "access-control-allow-origin" not in refused.headers
    assert read.status_code == 200  # the server answers; the browser hides it from the script
    assert "access-control-allow-origin" not in read.headers
    assert read.headers["vary"] == "Origin"


async def test_a_method_outside_the_contract_is_refused() -> None:
    """A method outside the contract is refused."""
    async with serving(["*"]) as client:
        response = await preflight(client, "/todos/1", "PUT")
    assert response.status_code == 400
    assert response.json()["detail"] == "Disallowed CORS method."


async def test_strict_by_default_no_cors_header_and_preflight_is_405() -> None:
    """Strict by default: no CORS header, and a preflight is a plain 405 with Allow."""
    assert cors_middleware([]) is None
    async with serving([]) as client:
        response = await preflight(client, "/todos/1", "PATCH")
        read = await client.get("/todos", headers={"Origin": CLIENT})
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}
    assert not any(name.startswith("access-control-") for name in response.headers)
    assert not any(name.startswith("access-control-") for name in read.headers)


@pytest.mark.parametrize(
    "origin",
    [
        "https://todobackend.com/",
        "todobackend.com",
        "https://a.com/path",
        "ftp://a.com",
        "https://",
    ],
)
def test_an_origin_a_browser_would_never_send_is_refused(origin: str) -> None:
    """An origin a browser would never send is refused."""
    with pytest.raises(ValueError, match="scheme://host"):
        check_origins([origin])


def test_the_middleware_refuses_to_run_without_origins() -> None:
    """Strict CORS is no middleware; building one with no origin is a mistake."""
    with pytest.raises(ValueError, match="no allowed origin"):
        CrossOriginMiddleware(Starlette(), origins=[" "])


def test_origins_are_trimmed_and_star_stands_alone() -> None:
    """Origins are trimmed and star stands alone."""
    assert check_origins([" https://a.com", "", "http://localhost:8080 "]) == (
        "https://a.com",
        "http://localhost:8080",
    )
    assert check_origins(["*"]) == ("*",)
    with pytest.raises(ValueError, match="alone"):
        check_origins(["*", "https://a.com"])
