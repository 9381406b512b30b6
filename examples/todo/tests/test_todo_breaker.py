"""PostgreSQL down: the breaker opens and the API answers 503 + Retry-After, then recovers.

A throwaway PostgreSQL server (`tests.support.postgres_server`) is stopped under the
running app, then started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING, Self

import httpx
import pytest
from tests.support.postgres_server import PostgresServer
from todo_support import assert_problem, eventually, write_headers

from todo.app import create_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from todo.settings import Settings


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, running."""
    with PostgresServer() as server:
        yield server


async def test_an_open_breaker_answers_503_with_retry_after(
    settings: Settings, postgres: PostgresServer
) -> None:
    """While PostgreSQL is down every uncached read is a 503 problem, never a 500.

    The breaker opens (answering at once, with `Retry-After`) while cached reads still
    work; once PostgreSQL is back and `open_for` has passed, a trial call closes it.
    """
    settings = dataclasses.replace(
        settings,
        database_url=postgres.dsn("todo"),  # created and migrated at startup (dev)
        db_breaker_minimum_calls=4,
        db_breaker_open_for=1.0,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            created = await client.post(
                "/todos", json={"title": "kept"}, headers=write_headers(settings)
            )
            url = created.json()["url"]
            assert 200 == (await client.get(url)).status_code  # now cached
            postgres.stop()

            problems = []
            for todo_id in range(100, 120):  # ids never read: each read reaches the database
                response = await client.get(f"/todos/{todo_id}")
                problems.append(assert_problem(response, 503))
                if "breaker" in problems[-1]:
                    break
            assert {"postgres"} == {
                problem["breaker"] for problem in problems if "breaker" in problem
            }
            assert "1" == response.headers["retry-after"]  # open_for, in whole seconds
            assert created.json() == (await client.get(url)).json()  # served from the cache

            postgres.start()

            async def recovered() -> bool:
                return (await client.get("/todos/200")).status_code == 404

            await eventually(recovered)
            assert (
                201
                == (
                    await client.post(
                        "/todos", json={"title": "back"}, headers=write_headers(settings)
                    )
                ).status_code
            )


class HeldCloseRelay:
    """A TCP relay to PostgreSQL that can forward what the server sends but not its close.

    A fast shutdown sends every session a FATAL message, then closes it. Once `hold()`
    was called, the relay passes the message on and keeps the client's side open: the
    app's idle pooled connections sit in the instant between the two until `release()`.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._holding = False
        self._links = 0
        self._held: list[asyncio.StreamWriter] = []
        self.all_held = asyncio.Event()
        """Set once the server closed every relayed connection while holding."""

    @property
    def port(self) -> int:
        """Where the relay listens."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def hold(self) -> None:
        """From now on, keep a client's connection open when the server closes it."""
        self._holding = True

    def release(self) -> None:
        """Close the clients' connections held open."""
        for client in self._held:
            client.transport.abort()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.release()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._links += 1
        sending = asyncio.create_task(_copy(reader, upstream_writer))
        await _copy(upstream_reader, writer)  # until the server closes
        sending.cancel()
        upstream_writer.transport.abort()
        self._links -= 1
        if not self._holding:
            writer.transport.abort()
            return
        self._held.append(writer)
        if not self._links:
            self.all_held.set()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def test_a_pooled_connection_the_server_just_terminated_answers_503_not_500(
    settings: Settings, postgres: PostgresServer
) -> None:
    """A write on a connection that got PostgreSQL's FATAL but not yet its close is a 503.

    asyncpg refuses any query on it (`InternalClientError: cannot switch to state ...`)
    until the close arrives; under load, the next request lent that idle connection
    answered 500. It is the database going away like any other: a 503 problem.
    """
    async with HeldCloseRelay(postgres.port) as relay:
        settings = dataclasses.replace(
            settings, database_url=f"postgresql://postgres@127.0.0.1:{relay.port}/todo"
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                headers = write_headers(settings)
                created = await client.post("/todos", json={"title": "kept"}, headers=headers)
                assert 201 == created.status_code  # a connection now idles in the pool
                relay.hold()
                await asyncio.to_thread(postgres.stop)
                await relay.all_held.wait()
                # The FATAL messages are in the app's sockets: one turn of the event
                # loop reads them.
                await asyncio.sleep(0)
                response = await client.post("/todos", json={"title": "lost"}, headers=headers)
                relay.release()
                assert_problem(response, 503)
