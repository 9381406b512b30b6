"""The Todo demo stack on Redis and PostgreSQL servers of its own, and the traffic it gets.

The soak and the fault runs start the demo's `Stack` (examples/todo/demo: uvicorn
replicas on Unix sockets behind a real nginx, a worker) on a private redis-server and
a private PostgreSQL (tests/support), so they may stop, kill and restart those servers
and measure a machine's shared servers not at all. `Mix` is the traffic: 90 % reads
(80 % a todo by id, 10 % a page of the list) and 10 % writes (5 % create, 5 %
complete a todo), as `Request`s for the open-loop client.

Run the scripts from the repository root with it on the path, e.g.
`PYTHONPATH=. .venv/bin/python benchmarks/todo_soak.py`, for `tests.support`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from tests.support.postgres_server import PostgresServer
from tests.support.redis_server import RedisServer

from _openloop import Records, Request, Target
from demo.load import UNTHROTTLED
from demo.stack import Options, Stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

__all__ = (
    "EXPECTED",
    "Mix",
    "Running",
    "failed_rows",
    "failures_per_window",
    "private_stack",
    "rss_bytes",
)

EXPECTED = {"read": 200, "list": 200, "create": 201, "update": 200}
"""The status the API promises for each kind of request of the `Mix`."""
_SHARES = (("read", 80), ("list", 10), ("create", 5), ("update", 5))
_STRIDE = 37  # coprime with 100: every 100 consecutive requests hold each share exactly


@dataclass
class Running:
    """A started stack, its private servers, and a token that may write."""

    stack: Stack
    redis: RedisServer
    postgres: PostgresServer
    token: str
    database_url: str
    """The private PostgreSQL's `todo` database, directly (not through the relay)."""

    @property
    def target(self) -> Target:
        """nginx, for the open-loop client."""
        return Target(port=self.stack.port)

    def pids(self) -> dict[str, int]:
        """Process id of every replica and of the worker, by name."""
        names = [*self.stack.replicas, "worker"]
        return {name: self.stack.child(name).process.pid for name in names}

    async def seed(self, count: int, title: str) -> list[int]:
        """Insert `count` todos straight into PostgreSQL; their ids."""
        connection = await asyncpg.connect(self.database_url)
        try:
            rows = await connection.fetch(
                "INSERT INTO todos (title) SELECT $1 || ' ' || n FROM generate_series(1, $2) n "
                "RETURNING id",
                title,
                count,
            )
        finally:
            await connection.close()
        return [row["id"] for row in rows]


@contextlib.asynccontextmanager
async def private_stack(
    *,
    port_base: int | None = None,
    replicas: int = 3,
    settings: Mapping[str, str] | None = None,
    worker_options: Sequence[str] = (),
    say: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[Running]:
    """Start a private Redis and PostgreSQL, then the stack on them; stop it all at exit.

    Args:
        port_base: nginx listens on `port_base`, Redis on +1, PostgreSQL on +2; free
            ports when `None`.
        replicas: uvicorn replicas behind nginx.
        settings: `TODO_*` variables over the load's (no rate limit that bites).
        worker_options: More `scalepy worker` options.
        say: Where the stack's progress goes.
    """
    directory = Path(tempfile.mkdtemp(prefix="todo-private."))
    ports = (None, None, None) if port_base is None else (port_base, port_base + 1, port_base + 2)
    redis = RedisServer(directory, port=ports[1])
    postgres = PostgresServer(port=ports[2])
    stack = Stack(
        Options(
            replicas=replicas,
            port=ports[0] or 0,
            settings={**UNTHROTTLED, "TODO_LOG_LEVEL": "WARNING", **(settings or {})},
            worker_options=worker_options,
        ),
        say=say,
    )
    try:
        await asyncio.to_thread(redis.start)
        await asyncio.to_thread(postgres.start)
        with _environment(TODO_DATABASE_URL=postgres.dsn("todo"), TODO_REDIS_URL=redis.url):
            await stack.start()
        token = await stack.mint_token("todos:write")
        yield Running(stack, redis, postgres, token, postgres.dsn("todo"))
    finally:
        await stack.stop()
        await asyncio.to_thread(postgres.remove)
        await asyncio.to_thread(redis.stop)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables (the stack reads its servers there) for the block."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Mix:
    """Request `i` of the 90/10 read/write traffic (deterministic: runs compare).

    Args:
        read_ids: Todos read by id; never written by the mix, so they stay cached.
        write_ids: Todos the mix marks completed (or not).
        token: A bearer token with the `todos:write` scope.
        run: Prefix of the titles it creates and of its `X-Request-ID`s.
    """

    read_ids: Sequence[int]
    write_ids: Sequence[int]
    token: str
    run: str
    _kinds: list[str] = field(init=False)

    def __post_init__(self) -> None:
        kinds = [kind for kind, share in _SHARES for _ in range(share)]
        self._kinds = [kinds[(n * _STRIDE) % 100] for n in range(100)]

    def request_id(self, index: int) -> str:
        """The `X-Request-ID` of request `index` (nginx logs it)."""
        return f"{self.run}-{index}"

    def __call__(self, index: int) -> Request:
        """Request `index`."""
        kind = self._kinds[index % 100]
        headers: list[tuple[str, str]] = [("x-request-id", self.request_id(index))]
        if kind == "read":
            todo_id = self.read_ids[index % len(self.read_ids)]
            return Request("GET", f"/todos/{todo_id}", b"", headers, kind)
        if kind == "list":
            return Request("GET", "/todos?limit=10", b"", headers, kind)
        headers += [("authorization", f"Bearer {self.token}"), ("content-type", "application/json")]
        if kind == "create":
            body = json.dumps({"title": f"{self.run} {index}"}).encode()
            return Request("POST", "/todos", body, headers, kind)
        todo_id = self.write_ids[index % len(self.write_ids)]
        body = json.dumps({"completed": bool(index // 100 % 2)}).encode()
        return Request("PATCH", f"/todos/{todo_id}", body, headers, kind)


def failed_rows(records: Records, rows: Sequence[int] | None = None) -> list[int]:
    """The rows that did not get the status the API promises for their kind."""
    chosen = range(len(records)) if rows is None else rows
    return [row for row in chosen if records.status[row] != EXPECTED[records.label_of(row)]]


def failures_per_window(records: Records, width: float) -> list[int]:
    """How many of the requests due in each window of `width` s failed (as `buckets`)."""
    if not len(records):
        return []
    counts = [0] * (int(max(records.scheduled) // width) + 1)
    for row in failed_rows(records):
        counts[int(records.scheduled[row] // width)] += 1
    return counts


def rss_bytes(pid: int) -> int:
    """The resident set size of a process (VmRSS in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ProcessLookupError(f"no VmRSS for process {pid}")
