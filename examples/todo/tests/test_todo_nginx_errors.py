"""deploy/nginx.conf: the errors nginx answers itself are problem+json, its 405 has `Allow`.

nginx refuses some requests before any location or upstream is involved: TRACE (405),
a URI or headers too large (414, 400), a request line it cannot parse (400). A real
nginx, with the config the demo renders and no replica behind it, must answer them as
the app answers its own errors (found by schemathesis through the demo's nginx: its
HTML pages, and a 405 without the `Allow` RFC 9110 requires).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.redis_server import free_port

from demo import nginx

if TYPE_CHECKING:
    from collections.abc import Iterator

_START_TIMEOUT = 15.0
_PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def front() -> Iterator[str]:
    """A real nginx with the demo's config on a free port, no replica behind it."""
    with tempfile.TemporaryDirectory(prefix="todo-nginx.") as scratch:
        prefix = Path(scratch) / "nginx"
        prefix.mkdir()
        Path(scratch).chmod(0o711)  # nginx runs as nobody when the tests run as root
        listen = f"127.0.0.1:{free_port()}"
        nginx.write_config(prefix, listen, [Path(scratch) / "no-replica.sock"])
        log = Path(scratch) / "nginx.log"
        with log.open("wb") as errors:
            process = subprocess.Popen(
                nginx.command(prefix), stdout=subprocess.DEVNULL, stderr=errors
            )
        try:
            _wait_listening(listen, process, log)
            yield f"http://{listen}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_listening(listen: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the port (another process: no event to await) until nginx accepts."""
    host, _, port = listen.rpartition(":")
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text()}")
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert status == response.status_code, response.text
    assert _PROBLEM == response.headers["content-type"]
    body = response.json()
    assert status == body["status"]
    assert isinstance(body["title"], str)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/todos", "GET, HEAD, DELETE, POST"),
        ("/todos/7", "GET, PATCH, HEAD, DELETE"),
        ("/health/live", "GET, HEAD"),
    ],
)
def test_trace_is_a_405_problem_with_the_methods_the_app_allows(
    front: str, path: str, allow: str
) -> None:
    """TRACE, refused by nginx itself: `Allow` lists what the app answers on that path."""
    response = httpx.request("TRACE", front + path)
    _assert_problem(response, 405)
    assert allow == response.headers["allow"]


def test_a_uri_too_long_is_a_414_problem(front: str) -> None:
    """A URI larger than nginx's header buffers."""
    _assert_problem(httpx.get(f"{front}/todos?x={'a' * 20_000}"), 414)


def test_headers_too_large_are_a_400_problem(front: str) -> None:
    """A header larger than nginx's header buffers (nginx's own 494, sent as 400)."""
    _assert_problem(httpx.get(f"{front}/todos", headers={"X-Big": "a" * 20_000}), 400)


def test_a_request_line_nginx_cannot_parse_is_a_400_problem(front: str) -> None:
    """It has no URI: a named error location would turn it into a 500."""
    host, _, port = front.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5.0) as connection:
        connection.sendall(b"GET /to dos HTTP/1.1\r\nHost: a\r\n\r\n")
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert "HTTP/1.1 400 Bad Request" == lines[0]
    assert f"content-type: {_PROBLEM}" in {line.lower() for line in lines[1:]}
    assert b'"status":400' in body
