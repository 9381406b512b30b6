"""Every response, errors included, carries the security headers; HSTS only when asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from todo.http import SecurityHeadersMiddleware, UnhandledErrorMiddleware, problem_handlers

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

EXPECTED = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cross-origin-resource-policy": "same-origin",
}
SHARED = JSONResponse({"shared": True})  # one response object answering every request
DOCS_CSP = "default-src 'self'"


async def shared(request: Request) -> Response:
    """Answer the same response object each time."""
    return SHARED


async def docs(request: Request) -> Response:
    """An HTML page with a policy of its own."""
    return HTMLResponse("<h1>docs</h1>", headers={"Content-Security-Policy": DOCS_CSP})


async def crash(request: Request) -> Response:
    """Fail the way a bug does."""
    raise RuntimeError("bug")


def client(hsts_max_age: int | None = None) -> TestClient:
    """A client of an app with the security headers around the error middleware."""
    app = Starlette(
        routes=[Route("/", shared), Route("/docs", docs), Route("/crash", crash)],
        middleware=[
            Middleware(SecurityHeadersMiddleware, hsts_max_age=hsts_max_age),
            Middleware(UnhandledErrorMiddleware),
        ],
        exception_handlers=problem_handlers(),
    )
    return TestClient(app)


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/nowhere", 404), ("/crash", 500)])
def test_every_response_carries_the_headers_and_no_hsts_by_default(path: str, status: int) -> None:
    """Every response carries the headers and no hsts by default."""
    response = client().get(path)
    assert response.status_code == status
    assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED
    assert "strict-transport-security" not in response.headers


def test_no_header_that_a_json_api_does_not_need() -> None:
    """No X-Frame-Options (frame-ancestors supersedes it) and no Referrer-Policy."""
    response = client().get("/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "x-frame-options" not in response.headers
    assert "referrer-policy" not in response.headers


def test_hsts_is_sent_when_configured() -> None:
    """Hsts is sent when configured."""
    response = client(hsts_max_age=31_536_000).get("/")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


def test_a_header_the_app_set_is_kept() -> None:
    """A header the app set is kept."""
    response = client().get("/docs")
    assert response.headers.get_list("content-security-policy") == [DOCS_CSP]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_reused_response_object_does_not_collect_headers() -> None:
    """A reused response object does not collect headers."""
    with client() as session:
        for _ in range(3):
            assert session.get("/").headers.get_list("x-content-type-options") == ["nosniff"]
    assert all(not name.startswith(b"x-content") for name, _ in SHARED.raw_headers)


def test_a_negative_hsts_age_is_refused() -> None:
    """A negative hsts age is refused."""
    with pytest.raises(ValueError, match="hsts_max_age"):
        SecurityHeadersMiddleware(client().app, hsts_max_age=-1)
