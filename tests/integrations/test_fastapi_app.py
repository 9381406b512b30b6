"""Tests of the FastAPI page's app (docs/examples/fastapi_app.py), against real Redis.

Self-contained: they need the app, FastAPI, httpx, pytest and pytest-asyncio, and
a Redis server at SCALEPY_TEST_REDIS_URL (`redis://127.0.0.1:6379/0` by default).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient
from fastapi_app import create_app

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI


@pytest.fixture
def app() -> FastAPI:
    """The app with Redis keys of its own, so tests never share a quota or a cached todo."""
    return create_app(namespace=f"todo-api-test-{uuid.uuid4().hex}")


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A client of the app, inside its lifespan (Redis opened, then closed)."""
    with TestClient(app) as client:
        yield client


def test_a_cached_endpoint_reads_the_database_once(app: FastAPI, client: TestClient) -> None:
    """The second GET is answered from the cache: the database was read once."""
    first, second = client.get("/todos/1"), client.get("/todos/1")
    assert (200, {"id": 1, "title": "Write the docs"}) == (first.status_code, first.json())
    assert first.json() == second.json()
    assert 1 == app.state.database.reads


def test_a_write_invalidates_the_cached_todo(client: TestClient) -> None:
    """After a PUT, the GET answers the new title, not the cached one."""
    assert "Write the docs" == client.get("/todos/1").json()["title"]
    assert 200 == client.put("/todos/1", json={"title": "Read the docs"}).status_code
    assert "Read the docs" == client.get("/todos/1").json()["title"]


def test_a_missing_todo_is_404_and_not_cached(app: FastAPI, client: TestClient) -> None:
    """The endpoint's HTTPException passes through the cache, which stores nothing."""
    assert [404, 404] == [client.get("/todos/99").status_code for _ in range(2)]
    assert 2 == app.state.database.reads


def test_a_limited_route_answers_the_ratelimit_headers(client: TestClient) -> None:
    """Each response tells the quota (20 per 2 s window) and what is left of it."""
    response = client.get("/todos/2")
    assert '"reads";q=20;w=2' == response.headers["ratelimit-policy"]
    assert '"reads";r=19;t=1' == response.headers["ratelimit"]


def test_the_fourth_write_in_a_minute_is_answered_429(client: TestClient) -> None:
    """`writes` allows 3 a minute; the 4th gets 429 problem+json with Retry-After."""
    statuses = [client.put("/todos/2", json={"title": "x"}).status_code for _ in range(4)]
    denied = client.put("/todos/2", json={"title": "never stored"})
    assert [200, 200, 200, 429] == statuses
    assert 429 == denied.status_code
    assert "application/problem+json" == denied.headers["content-type"]
    retry_after = int(denied.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert denied.headers["ratelimit"].startswith('"writes";r=0;')
    assert {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"Rate limit exceeded; retry in {retry_after} s.",
        "retry_after": retry_after,
    } == json.loads(denied.content)
    assert "x" == client.get("/todos/2").json()["title"]  # the denied PUT never ran


def test_each_route_has_a_quota_of_its_own(client: TestClient) -> None:
    """Writes used up on one todo's route leave the reads of the same client untouched."""
    for _ in range(4):
        client.put("/todos/1", json={"title": "x"})
    assert 200 == client.get("/todos/1").status_code


def test_the_health_probes_are_served(client: TestClient) -> None:
    """Inside the lifespan the app is started and Redis answers: live and ready pass."""
    live, ready = client.get("/health/live"), client.get("/health/ready")
    assert (200, 200) == (live.status_code, ready.status_code)
    assert "application/health+json" == ready.headers["content-type"]
    assert "pass" == ready.json()["status"]


def test_the_openapi_document_shows_the_cached_endpoint_and_the_429(client: TestClient) -> None:
    """The cached endpoint keeps its parameters and response model; 429 is documented.

    The database dependency is no parameter; 429 is problem+json with Retry-After.
    """
    document = client.get("/openapi.json").json()
    get = document["paths"]["/todos/{todo_id}"]["get"]
    assert ["todo_id"] == [parameter["name"] for parameter in get["parameters"]]
    assert {"$ref": "#/components/schemas/Todo"} == (
        get["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert ["application/problem+json"] == list(get["responses"]["429"]["content"])
    assert "Retry-After" in get["responses"]["429"]["headers"]
    assert not any(path.startswith("/health") for path in document["paths"])


@pytest.mark.asyncio
async def test_an_async_client_gets_the_same_answers(app: FastAPI) -> None:
    """An httpx AsyncClient on the ASGI app, inside the lifespan (ASGITransport runs none)."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        assert 200 == (await client.get("/health/ready")).status_code
        first = await client.get("/todos/2")
        second = await client.get("/todos/2")
    assert (200, first.json()) == (second.status_code, second.json())
    assert 1 == app.state.database.reads
