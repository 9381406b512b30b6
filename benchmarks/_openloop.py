"""An open-loop HTTP/1.1 load generator: requests leave on schedule, answered or not.

A closed-loop client (wrk, ab, a loop of `await client.get()`) sends its next request
when the last one is answered, so a server that stalls also stalls its load and the
stall hides in a few slow samples (coordinated omission). Here request `i` is due at
`i / rate` seconds, whatever happened to the others, and its latency is measured from
that due time: time spent waiting for a free connection counts, as it would for a user.

How: one dispatcher hands each due request to a pool of connection tasks through a
queue; when none is idle it opens another connection (up to `max_connections`), so
requests do not wait behind a slow one. Each connection is a raw asyncio stream
(TCP or a Unix socket) kept alive across requests: HTTP/1.1 with `Content-Length` or
chunked bodies, nothing else. A request is never sent twice: a reset, a timeout or a
refused connect is recorded as what it was.

The records are columns (`array`s of doubles), about 30 bytes a request, so a
20-minute soak at 1,000 req/s keeps every request in ~40 MB.
"""

from __future__ import annotations

import asyncio
import math
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = (
    "NO_RESPONSE",
    "Bucket",
    "OpenLoop",
    "Records",
    "Request",
    "Target",
    "buckets",
    "percentile",
    "summary",
)

NO_RESPONSE = 0
"""The status recorded for a request that got no response (see `Records.errors`)."""

_KEPT_HEADS = 10_000  # response heads of errors kept, at most (for Retry-After and the like)


@dataclass(frozen=True, slots=True)
class Target:
    """Where requests go: `host:port` over TCP, or a Unix socket (`uds`)."""

    host: str = "127.0.0.1"
    port: int = 80
    uds: str | None = None

    @classmethod
    def from_url(cls, url: str) -> Target:
        """`http://host:port` or `unix:/path/to.sock`."""
        if url.startswith("unix:"):
            return cls(host="localhost", uds=url.removeprefix("unix:"))
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"an http://host:port or unix:/path URL, not {url!r}")
        return cls(host=parts.hostname, port=parts.port or 80)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open one connection."""
        if self.uds is not None:
            return await asyncio.open_unix_connection(self.uds)
        return await asyncio.open_connection(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Request:
    """One request to send: its bytes on the wire come from `encode()`."""

    method: str
    path: str
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    label: str = ""
    """What kind of request it is (`read`, `write`...), for per-kind figures."""
    capture: bool = False
    """Keep the response body (`Records.bodies`), e.g. to learn the id of a created item."""

    def encode(self, host: str) -> bytes:
        """The request as HTTP/1.1 bytes, keep-alive."""
        lines = [f"{self.method} {self.path} HTTP/1.1", f"host: {host}"]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"content-length: {len(self.body)}")
        return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + self.body


@dataclass(slots=True)
class Records:
    """What happened to every request, in columns; times in seconds from the start."""

    labels: list[str] = field(default_factory=list)
    """The distinct `Request.label`s; `label[i]` indexes it."""
    index: array[int] = field(default_factory=lambda: array("q"))
    """The request's sequence number (its due time is `index / rate`)."""
    scheduled: array[float] = field(default_factory=lambda: array("d"))
    """When it was due."""
    started: array[float] = field(default_factory=lambda: array("d"))
    """When a connection began sending it (later than due when every connection was busy)."""
    ended: array[float] = field(default_factory=lambda: array("d"))
    """When its response was read, or it failed."""
    status: array[int] = field(default_factory=lambda: array("h"))
    """The HTTP status, or `NO_RESPONSE`."""
    label: array[int] = field(default_factory=lambda: array("B"))
    errors: dict[int, str] = field(default_factory=dict)
    """Row -> what went wrong, for every request with no response."""
    heads: dict[int, bytes] = field(default_factory=dict)
    """Row -> response head (status line and headers), for responses with a status >= 400."""
    bodies: dict[int, bytes] = field(default_factory=dict)
    """Row -> response body, for requests sent with `capture=True`."""

    def __len__(self) -> int:
        return len(self.index)

    def add(
        self, request: Request, index: int, scheduled: float, started: float, ended: float,
        status: int,
    ) -> int:  # fmt: skip
        """Append one request's outcome; return its row."""
        if request.label not in self.labels:
            self.labels.append(request.label)
        self.index.append(index)
        self.scheduled.append(scheduled)
        self.started.append(started)
        self.ended.append(ended)
        self.status.append(status)
        self.label.append(self.labels.index(request.label))
        return len(self.index) - 1

    def latency(self, row: int) -> float:
        """Seconds from when it was due to its end: what a user waiting for it saw."""
        return self.ended[row] - self.scheduled[row]

    def label_of(self, row: int) -> str:
        """The label of the request in `row`."""
        return self.labels[self.label[row]]

    def rows(self, *, label: str | None = None) -> list[int]:
        """Every row, or those of one label."""
        if label is None:
            return list(range(len(self)))
        if label not in self.labels:
            return []
        wanted = self.labels.index(label)
        return [row for row, value in enumerate(self.label) if value == wanted]


@dataclass(frozen=True, slots=True)
class Bucket:
    """The requests due in one time window (or a whole run)."""

    start: float
    """The window's start, in seconds from the run's start."""
    width: float
    sent: int
    """Requests due in it."""
    statuses: dict[int, int]
    """Status -> count (`NO_RESPONSE` for requests that got none)."""
    p50: float
    """Median latency in seconds (from due time to end), over every request in it."""
    p99: float
    max: float
    lag_p99: float
    """99th percentile of how late requests started: the client's own delay (should be ~0)."""

    @property
    def failed(self) -> int:
        """Requests with no response or a 5xx."""
        return sum(count for status, count in self.statuses.items() if not 0 < status < 500)

    @property
    def rate(self) -> float:
        """Requests due per second."""
        return self.sent / self.width if self.width else 0.0


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-1) of sorted values; 0 for no values."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary(records: Records, rows: Sequence[int], *, start: float, width: float) -> Bucket:
    """One `Bucket` over the given rows."""
    latencies = sorted(records.latency(row) for row in rows)
    lags = sorted(records.started[row] - records.scheduled[row] for row in rows)
    return Bucket(
        start=start,
        width=width,
        sent=len(rows),
        statuses=dict(Counter(records.status[row] for row in rows)),
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        max=latencies[-1] if latencies else 0.0,
        lag_p99=percentile(lags, 0.99),
    )


def buckets(records: Records, width: float = 1.0, *, label: str | None = None) -> list[Bucket]:
    """Consecutive windows of `width` seconds, by due time, from 0 to the last request."""
    if not len(records):
        return []
    grouped: dict[int, list[int]] = {}
    for row in records.rows(label=label):
        grouped.setdefault(int(records.scheduled[row] // width), []).append(row)
    last = int(max(records.scheduled) // width)
    return [
        summary(records, grouped.get(n, []), start=n * width, width=width) for n in range(last + 1)
    ]


class _ProtocolError(Exception):
    """The response was not HTTP/1.1 as this client reads it."""


class OpenLoop:
    """Send `source(i)` at `i / rate` seconds for `duration` seconds; record every outcome.

    Args:
        target: Where to send.
        source: The request to send as number `i` (deterministic, so runs can be compared).
        rate: Requests per second offered.
        max_connections: Connections opened at most; beyond that, due requests wait
            for one (and their latency shows it).
        timeout: Seconds a request may take, connect included, before it is recorded
            as failed and its connection closed.
    """

    def __init__(
        self,
        target: Target,
        source: Callable[[int], Request],
        *,
        rate: float,
        max_connections: int = 256,
        timeout: float = 10.0,
    ) -> None:
        if rate <= 0 or max_connections < 1 or timeout <= 0:
            raise ValueError("rate and timeout must be positive, max_connections at least 1")
        self.records = Records()
        self._target = target
        self._source = source
        self._rate = rate
        self._max_connections = max_connections
        self._timeout = timeout
        self._due: asyncio.Queue[int] = asyncio.Queue()
        self._idle = 0
        self._connections: set[asyncio.Task[None]] = set()
        self._origin = 0.0

    @property
    def connections(self) -> int:
        """Connections opened so far (alive or not)."""
        return len(self._connections)

    def elapsed(self) -> float:
        """Seconds since the run started (the records' time base)."""
        return asyncio.get_running_loop().time() - self._origin

    async def run(self, duration: float) -> Records:
        """Offer the load for `duration` seconds, then wait for the last answers."""
        loop = asyncio.get_running_loop()
        self._origin = loop.time()
        try:
            for index in range(round(duration * self._rate)):
                delay = self._origin + index / self._rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._due.put_nowait(index)
                if self._idle == 0 and len(self._connections) < self._max_connections:
                    self._connections.add(asyncio.create_task(self._connection()))
            await self._due.join()
        finally:
            for task in self._connections:
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
        return self.records

    async def _connection(self) -> None:
        """One keep-alive connection: take due requests one at a time, forever."""
        stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        host = self._target.host
        try:
            while True:
                self._idle += 1
                try:
                    index = await self._due.get()
                finally:
                    self._idle -= 1
                request = self._source(index)
                started = self.elapsed()
                status, head, body, error = NO_RESPONSE, b"", b"", ""
                try:
                    async with asyncio.timeout(self._timeout):
                        if stream is None:
                            stream = await self._target.connect()
                        reader, writer = stream
                        writer.write(request.encode(host))
                        status, head, body, keep = await _response(reader, request.method)
                    if not keep:
                        _close(stream)
                        stream = None
                except (OSError, TimeoutError, asyncio.IncompleteReadError, _ProtocolError) as exc:
                    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    _close(stream)
                    stream = None
                row = self.records.add(
                    request, index, index / self._rate, started, self.elapsed(), status
                )
                if error:
                    self.records.errors[row] = error
                elif status >= 400 and len(self.records.heads) < _KEPT_HEADS:
                    self.records.heads[row] = head
                if request.capture:
                    self.records.bodies[row] = body
                self._due.task_done()
        finally:
            _close(stream)


def _close(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    """Drop a connection at once (no graceful close to wait for)."""
    if stream is not None:
        stream[1].transport.abort()


async def _response(reader: asyncio.StreamReader, method: str) -> tuple[int, bytes, bytes, bool]:
    """Read one response: status, head, body, and whether the connection may be reused."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise _ProtocolError("response head too large") from exc
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise _ProtocolError(f"not an HTTP status line: {lines[0][:80]!r}") from None
    length: int | None = None
    chunked, keep = False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep = b"close" not in value
    if method == "HEAD" or status in {204, 304} or status < 200:
        body = b""
    elif chunked:
        body = await _chunks(reader)
    elif length is not None:
        body = await reader.readexactly(length)
    else:  # delimited by the end of the connection
        body, keep = await reader.read(), False
    return status, head, body, keep


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0], 16)
        except ValueError:
            raise _ProtocolError(f"bad chunk size {size_line[:40]!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size + 2)
        del body[-2:]
