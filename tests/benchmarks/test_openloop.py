"""benchmarks/_openloop.py: requests leave on schedule, whatever the server does with earlier ones.

Against a tiny HTTP/1.1 server in the test's loop (TCP or a Unix socket) whose paths
answer at once, in chunks, with `Connection: close`, with a 503, late, or never.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from _openloop import NO_RESPONSE, OpenLoop, Records, Request, Target, buckets, percentile
from tests.support.redis_server import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class TinyServer:
    """Answers `GET /ok`, `/chunked`, `/close`, `/busy` (503), `/late`, `/never`."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        """`/late` answers once this is set: after `release_after` other answers."""
        self.release_after = 0
        self.served: Counter[int] = Counter()
        """Connection number -> requests answered on it."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the client closes it."""
        connection = len(self.served) + 1
        self.served[connection] += 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1]
                if path == b"/never":
                    await asyncio.Event().wait()
                if path == b"/late":
                    await self.released.wait()
                writer.write(_ANSWERS.get(path, _ANSWERS[b"/ok"]))
                self.served[connection] += 1
                if self.served.total() == self.release_after:
                    self.released.set()
                if path == b"/close":
                    break
        except asyncio.IncompleteReadError:
            pass  # the client closed the connection
        finally:
            writer.close()


_ANSWERS = {
    b"/ok": b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    b"/chunked": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
    ),
    b"/close": b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
    b"/busy": b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
}


@pytest.fixture
async def server() -> AsyncIterator[tuple[TinyServer, Target]]:
    """The tiny server on a free TCP port."""
    tiny = TinyServer()
    listener = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    async with listener:
        yield tiny, Target(port=listener.sockets[0].getsockname()[1])


def _get(path: str, *, capture: bool = False) -> Request:
    return Request("GET", path, label=path.strip("/"), capture=capture)


async def test_every_request_is_sent_once_at_its_due_time_and_recorded(
    server: tuple[TinyServer, Target],
) -> None:
    """100 requests at 200/s: each recorded once, due at i/200 s, started no earlier.

    The connections are kept alive: at least one served several requests.
    """
    tiny, target = server
    records = await OpenLoop(target, lambda _: _get("/ok"), rate=200).run(0.5)
    assert list(range(100)) == sorted(records.index)
    assert [index / 200 for index in records.index] == list(records.scheduled)
    assert all(
        started >= due for started, due in zip(records.started, records.scheduled, strict=True)
    )
    assert {200: 100} == Counter(records.status)
    assert 100 == sum(tiny.served.values())
    assert max(tiny.served.values()) > 1
    assert [100] == [bucket.sent for bucket in buckets(records, width=1.0)]


async def test_a_stalled_request_does_not_hold_back_the_ones_due_after_it(
    server: tuple[TinyServer, Target],
) -> None:
    """Request 0 is answered only after 48 others: they were sent while it waited.

    A closed-loop client on one connection would send nothing while it waits. Request 0's
    latency covers the whole stall: it is counted from its due time.
    """
    tiny, target = server
    tiny.release_after = 48
    loop = OpenLoop(target, lambda index: _get("/late" if index == 0 else "/ok"), rate=100)
    records = await loop.run(0.5)
    late = records.index.index(0)
    others = [row for row in range(len(records)) if row != late]
    assert 48 <= sum(records.ended[row] < records.ended[late] for row in others)
    assert {200: 50} == Counter(records.status)
    assert records.latency(late) >= 48 / 100
    assert loop.connections >= 2


async def test_a_request_never_answered_fails_at_its_timeout_and_its_connection_is_dropped(
    server: tuple[TinyServer, Target],
) -> None:
    """No answer within `timeout`: no status, a TimeoutError, ended `timeout` after it started."""
    _, target = server
    records = await OpenLoop(target, lambda _: _get("/never"), rate=10, timeout=0.2).run(0.1)
    assert [NO_RESPONSE] == list(records.status)
    assert {0: "TimeoutError"} == records.errors
    assert 0.2 <= records.ended[0] - records.started[0] < 5.0


async def test_a_refused_connect_is_recorded_not_retried() -> None:
    """Nothing listens: every request is recorded with the connect's error, each sent once."""
    records = await OpenLoop(Target(port=free_port()), lambda _: _get("/ok"), rate=50).run(0.1)
    assert 5 == len(records)
    assert {NO_RESPONSE} == set(records.status)
    assert all(error.startswith("ConnectionRefusedError") for error in records.errors.values())


async def test_unix_socket_chunked_bodies_connection_close_and_error_heads(tmp_path: Path) -> None:
    """Over a Unix socket: chunked bodies, `Connection: close`, the heads of errors.

    A chunked body is read whole (and kept when asked), a `Connection: close` answer
    ends its connection, and a 503's head is kept (its Retry-After).
    """
    tiny = TinyServer()
    path = tmp_path / "tiny.sock"
    paths = ["/chunked", "/close", "/close", "/busy", "/ok"]
    listener = await asyncio.start_unix_server(tiny.handle, path)
    async with listener:

        def source(index: int) -> Request:
            return _get(paths[index], capture=True)

        records = await OpenLoop(
            Target.from_url(f"unix:{path}"), source, rate=20, max_connections=1
        ).run(0.25)
    by_path = {records.label_of(row): row for row in range(len(records))}
    assert [200, 200, 503, 200] == [
        records.status[by_path[name]] for name in ("chunked", "close", "busy", "ok")
    ]
    assert b"hello" == records.bodies[by_path["chunked"]]
    assert b"retry-after: 1" in records.heads[by_path["busy"]]
    assert [2, 1, 2] == list(tiny.served.values())  # closed after each /close


def test_buckets_count_statuses_and_latency_percentiles_by_due_time() -> None:
    """Requests fall in the window they were due in; failures are no response or a 5xx."""
    records = Records()
    outcomes = [(0.1, 0.2, 200), (0.5, 0.6, 200), (0.9, 2.0, 0), (1.2, 1.3, 503), (1.5, 1.6, 429)]
    for index, (due, end, status) in enumerate(outcomes):
        records.add(Request("GET", "/"), index, due, due, end, status)
    first, second = buckets(records, width=1.0)
    assert (3, {200: 2, 0: 1}, 1) == (first.sent, first.statuses, first.failed)
    assert (2, {503: 1, 429: 1}, 1) == (second.sent, second.statuses, second.failed)
    assert pytest.approx(1.1) == first.max == first.p99
    assert pytest.approx(0.1) == first.p50
    assert [1.0, 1.0, 3.0, 0.0] == [
        percentile([1.0, 2.0, 3.0], 0.0),
        percentile([1.0], 0.5),
        percentile([1.0, 2.0, 3.0], 0.99),
        percentile([], 0.5),
    ]
