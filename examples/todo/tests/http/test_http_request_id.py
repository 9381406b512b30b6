"""Each request gets an id: a sane incoming one is kept, echoed and put in log records."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from todo.http import RequestIdFilter, RequestIdMiddleware, current_request_id

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.requests import Request
    from starlette.responses import Response

GENERATED = re.compile(r"[0-9a-f]{32}")
logger = logging.getLogger("todo.tests.request_id")


class Recorder(logging.Handler):
    """Keep the formatted lines a handler with the filter writes."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(RequestIdFilter())
        self.setFormatter(logging.Formatter("%(request_id)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        """Format and keep the record."""
        self.lines.append(self.format(record))


async def whoami(request: Request) -> Response:
    """Answer the id the handler sees, both ways, and log a line."""
    logger.warning("serving")
    return JSONResponse({"context": current_request_id(), "state": request.state.request_id})


def client(*, trust_incoming: bool = True) -> TestClient:
    """A client of an app that echoes the id its handler sees."""
    middleware = [Middleware(RequestIdMiddleware, trust_incoming=trust_incoming)]
    return TestClient(Starlette(routes=[Route("/", whoami)], middleware=middleware))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A handler on the test logger, removed afterwards."""
    handler = Recorder()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_sane_incoming_id_is_kept_echoed_and_logged(recorder: Recorder) -> None:
    """A sane incoming id is kept, echoed and logged."""
    incoming = "nginx-3f2a:1/abc=+_."
    response = client().get("/", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming
    assert response.json() == {"context": incoming, "state": incoming}
    assert recorder.lines == [f"{incoming} serving"]


@pytest.mark.parametrize(
    "incoming", [b"a" * 129, b"two words", b"<script>", "café".encode(), b"\x7f", b""]
)
def test_an_unsafe_incoming_id_is_replaced(incoming: bytes) -> None:
    """An unsafe incoming id is replaced."""
    response = client().get("/", headers=[(b"x-request-id", incoming)])
    echoed = response.headers["x-request-id"]
    assert GENERATED.fullmatch(echoed)
    assert response.json() == {"context": echoed, "state": echoed}


def test_ids_are_made_up_when_incoming_ones_are_not_trusted() -> None:
    """Ids are made up when incoming ones are not trusted."""
    response = client(trust_incoming=False).get("/", headers={"X-Request-ID": "abc"})
    assert GENERATED.fullmatch(response.headers["x-request-id"])


def test_each_request_gets_its_own_id() -> None:
    """Each request gets its own id."""
    with client() as session:
        ids = {session.get("/").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_outside_a_request_there_is_no_id(recorder: Recorder) -> None:
    """Outside a request there is no id."""
    client().get("/")
    assert current_request_id() is None
    logger.warning("idle")
    assert recorder.lines[-1] == "- idle"
