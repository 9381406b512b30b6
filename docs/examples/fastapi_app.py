"""A FastAPI app on scalepy: cached, rate-limited endpoints, health probes, one Redis client.

Serve it with `uvicorn docs.examples.fastapi_app:app`; run it as a program to
send a few requests in-process.
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache
from scalepy.health import Health, redis_check
from scalepy.integrations.fastapi import error_responses, install, limit
from scalepy.ratelimit import GCRA, RateLimiter, TokenBucket

REDIS_URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class Todo(TypedDict):
    """A todo as the API answers it (a plain dict: the cache stores it as JSON)."""

    id: int
    title: str


class TodoIn(BaseModel):
    """The body of a PUT."""

    title: str


class Database:
    """Stands for a real one; counts its reads so that cache hits can be seen."""

    def __init__(self) -> None:
        self.rows = {1: "Write the docs", 2: "Ship the wheel"}
        self.reads = 0

    async def get(self, todo_id: int) -> Todo | None:
        """The todo `todo_id`, or `None`."""
        self.reads += 1
        title = self.rows.get(todo_id)
        return None if title is None else Todo(id=todo_id, title=title)


def get_database(request: Request) -> Database:
    """The app's database: a dependency, as a session or a pool would be."""
    database: Database = request.app.state.database
    return database


def create_app(redis_url: str = REDIS_URL, *, namespace: str = "todo-api") -> FastAPI:
    """The application; `namespace` keeps its Redis keys apart from other apps'."""
    redis = RedisClient.from_url(redis_url)  # one client, shared by every primitive
    cache = Cache(redis, namespace=namespace)
    limiter = RateLimiter(redis, namespace=namespace)
    health = Health(checks=[redis_check(redis)])
    database = Database()

    app = FastAPI(title="Todo API", version="1.0.0")
    app.state.database = database
    # /health/live, /health/ready, /health/startup; the lifespan opens and closes the
    # resources around the app's own; scalepy's errors answer application/problem+json.
    install(app, health, resources=[redis, cache, limiter])

    reads = limit(TokenBucket(capacity=20, refill_rate=10.0, name="reads"), limiter=limiter)
    writes = limit(GCRA(limit=3, period=60, name="writes"), limiter=limiter)

    @app.get(
        "/todos/{todo_id}",
        dependencies=[Depends(reads)],
        responses={404: {"description": "No such todo."}, **error_responses(429)},
    )
    # The key names the arguments that identify the answer: the database is not one.
    @cache.cached(ttl=60, key="todo:{todo_id}", tags=["todo:{todo_id}"])
    async def get_todo(todo_id: int, db: Annotated[Database, Depends(get_database)]) -> Todo:
        todo = await db.get(todo_id)
        if todo is None:
            raise HTTPException(404, f"no todo {todo_id}")  # an exception is never cached
        return todo

    @app.put("/todos/{todo_id}", dependencies=[Depends(writes)], responses=error_responses(429))
    async def put_todo(todo_id: int, body: TodoIn) -> Todo:
        database.rows[todo_id] = body.title
        await cache.invalidate_tags(f"todo:{todo_id}")  # every replica's copy
        return Todo(id=todo_id, title=body.title)

    return app


app = create_app()


def main() -> None:
    """Send a few requests through the app in-process, with its lifespan."""
    application = create_app(namespace=f"todo-api-{os.getpid()}")
    with TestClient(application) as client:
        assert client.get("/health/ready").status_code == 200
        first = client.get("/todos/1")
        assert (first.status_code, first.json()) == (200, {"id": 1, "title": "Write the docs"})
        assert first.headers["ratelimit-policy"] == '"reads";q=20;w=2'
        assert client.get("/todos/1").json() == first.json()  # from the cache
        assert application.state.database.reads == 1
        assert [client.put("/todos/1", json={"title": "t"}).status_code for _ in range(4)] == [
            200,
            200,
            200,
            429,
        ]
        assert client.get("/todos/1").json()["title"] == "t"  # invalidated by the PUT


if __name__ == "__main__":
    main()
