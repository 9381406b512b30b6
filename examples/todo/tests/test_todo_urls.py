"""Public URLs: forwarded headers are believed from trusted proxies only (TCP or Unix socket)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from todo.urls import PublicUrls

FORWARDED = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"todo.example")]


def request(client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]) -> Request:
    """A request as uvicorn hands it over: over TCP (`client` set) or a Unix socket (`None`)."""
    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "path": "/todos",
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"host", b"app.internal:8000")],
        "client": client,
    }
    return Request(scope)


@pytest.mark.parametrize(
    ("trusted", "client", "origin"),
    [
        ((), ("10.1.2.3", 5000), "http://app.internal:8000"),
        (("10.0.0.0/8",), ("10.1.2.3", 5000), "https://todo.example"),
        (("10.0.0.0/8",), ("192.0.2.9", 5000), "http://app.internal:8000"),
        (("unix",), None, "https://todo.example"),
        (("10.0.0.0/8",), None, "http://app.internal:8000"),  # a socket peer is not 10/8
        (("unix",), ("10.1.2.3", 5000), "http://app.internal:8000"),  # nor an IP peer unix
    ],
)
def test_forwarded_headers_are_believed_from_trusted_peers_only(
    trusted: tuple[str, ...], client: tuple[str, int] | None, origin: str
) -> None:
    """The peer decides whether X-Forwarded-Proto and -Host name the public origin."""
    assert origin == PublicUrls(trusted).origin(request(client, FORWARDED))


def test_a_host_that_is_not_a_host_is_not_echoed() -> None:
    """A host with a path or spaces is not echoed: the server's own address is used."""
    forwarded = [(b"x-forwarded-host", b"evil.example/phish?x=")]
    assert "http://app.internal:8000" == PublicUrls(["unix"]).origin(request(None, forwarded))
    host = [(b"host", b"evil.example/phish?x=")]  # the first Host header is the one read
    assert "http://127.0.0.1:8000" == PublicUrls([]).origin(request(("10.1.2.3", 5000), host))
