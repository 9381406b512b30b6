"""benchmarks/_wrk.py: real wrk sends the cycle of requests and reports statuses and percentiles.

Against a tiny HTTP/1.1 server in the test's loop: `/ok` answers 200, `/limited` 429,
`/broken` 500; it records every request it read (method, path, headers, body).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from _wrk import Request, WrkError, lua_script, parse, run

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_STATUSES = {b"/ok": b"200 OK", b"/limited": b"429 Too Many Requests", b"/broken": b"500 Oops"}


class TinyServer:
    """Answers by path (`_STATUSES`) and keeps the requests it read."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []
        """(head, body) of every request read."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one keep-alive connection until the client closes it."""
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.partition(b":")[2])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                status = _STATUSES[head.split(b" ")[1]]
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[TinyServer, str]]:
    """A running `TinyServer` and its base URL."""
    tiny = TinyServer()
    listening = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield tiny, f"http://127.0.0.1:{port}"


async def test_wrk_sends_the_cycle_and_counts_each_status(server: tuple[TinyServer, str]) -> None:
    """Each connection sends the requests in order; the run counts responses per status.

    The POST carries its body and headers; latencies are ordered percentiles.
    """
    tiny, url = server
    cycle = [
        Request("GET", "/ok"),
        Request("GET", "/limited"),
        Request("POST", "/broken", body='{"title":"x"}', headers={"Authorization": "Bearer t"}),
        Request("GET", "/ok"),
    ]
    measured = await run(url, cycle, seconds=1, connections=1, threads=1)
    assert measured.requests > 4
    assert sum(measured.statuses.values()) == measured.requests
    # One connection, so the cycle is sent in order: two 200s per 429 and per 500.
    assert abs(measured.count(200) - 2 * measured.count(429)) <= 2
    assert abs(measured.count(429) - measured.count(500)) <= 1
    assert measured.count(429) + measured.count(500) == measured.non_2xx
    assert 0 == measured.socket_errors
    latency = measured.latency_ms
    assert 0 < latency["p50"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    assert measured.requests_per_second == pytest.approx(measured.requests / measured.seconds)
    posts = [(head, body) for head, body in tiny.requests if head.startswith(b"POST /broken ")]
    assert posts
    assert b'{"title":"x"}' == posts[0][1]
    assert b"authorization: bearer t" in posts[0][0].lower()


def test_output_without_figures_is_an_error() -> None:
    """Wrk output lacking the script's line (another script, a crash) raises WrkError."""
    with pytest.raises(WrkError, match="no figures"):
        parse("Running 1s test @ http://127.0.0.1:1\n  1 threads and 1 connections\n")


def test_figures_of_several_threads_are_summed() -> None:
    """A status reported by several wrk threads counts once with their sum; times are ms."""
    line = (
        'WRK-RESULT {"requests":7,"duration_us":2000000,'
        '"errors":{"connect":1,"read":0,"write":0,"timeout":2},'
        '"latency_us":{"p50":1500,"p90":2000,"p99":3000,"p999":4000,"max":5000},'
        '"statuses":[[200,3],[429,1],[200,3]]}'
    )
    measured = parse(f"Running 2s test\n{line}\nRequests/sec: 3.5\n")
    assert {200: 6, 429: 1} == dict(measured.statuses)
    assert 3 == measured.socket_errors
    assert 1.5 == measured.latency_ms["p50"]
    assert 3.5 == measured.requests_per_second
    assert 3.0 == measured.successes_per_second


def test_requests_must_be_ascii_and_not_empty() -> None:
    """Wrk's Lua takes ASCII strings only; a script needs at least one request."""
    with pytest.raises(ValueError, match="ASCII"):
        lua_script([Request("POST", "/todos", body='{"title":"caf\u00e9"}')])
    with pytest.raises(ValueError, match="at least one"):
        lua_script([])
