"""PostgreSQL down: the breaker opens and the API answers 503 + Retry-After, then recovers.

A throwaway PostgreSQL server (`tests.support.postgres_server`) is stopped under the
running app, then started again.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

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
