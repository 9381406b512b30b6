"""The baseline of issue 16: the Todo API written the way the scaling tutorial writes it.

    uvicorn --app-dir benchmarks --factory tutorial_app:create_app    # the baseline
    uvicorn --app-dir benchmarks --factory tutorial_app:ceiling_app   # the bare route

The same routes and JSON as `examples/todo` (`GET /todos/{id}`, `GET /todos`,
`POST /todos`, `PATCH /todos/{id}`) on the same table, built as the tutorial's
code is, translated literally to Python:

- Starlette handlers, asyncpg for PostgreSQL (a pool of 10, as the Todo API's);
- read-through caching with redis-py: one `GET` of one JSON key per read, and on a
  miss the query and one `SETEX` (60 s); no invalidation, so a read may be stale
  for up to a minute after a write;
- slowapi's middleware for the per-client rate limit, its counters in the same
  Redis (shared by every worker, as the Todo API's are);
- writes check the same HS256 bearer token as the Todo API, with pyjwt.

`ceiling_app` is a bare Starlette route answering a constant JSON todo: what
uvicorn and Starlette cost alone, the most any app on this stack can do.

Configured by environment variables: `TUTORIAL_DATABASE_URL`, `TUTORIAL_REDIS_URL`,
`TUTORIAL_RATE_LIMIT` (slowapi's syntax, e.g. `100/second`), `TUTORIAL_JWT_SECRET`.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING, Any

import asyncpg
import jwt
import redis.asyncio as redis
from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from slowapi.extension import _rate_limit_exceeded_handler
from slowapi.middleware import SlowAPIMiddleware
from slowapi.util import get_remote_address
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request

    Writer = Callable[[Request, dict[str, Any]], Awaitable[JSONResponse]]

__all__ = ("ceiling_app", "create_app")

_TTL = 60
_COLUMNS = 'id, title, description, completed, "order", created_at'
_TODO = {"id": 1, "title": "write the benchmark", "completed": False, "order": None}


def create_app() -> Starlette:
    """The tutorial-style Todo API, configured from the `TUTORIAL_*` variables."""
    database_url = os.environ.get("TUTORIAL_DATABASE_URL", "postgresql://postgres@127.0.0.1/todo")
    redis_url = os.environ.get("TUTORIAL_REDIS_URL", "redis://127.0.0.1:6379/0")
    secret = os.environ.get("TUTORIAL_JWT_SECRET", "todo-dev-secret-change-me-in-production")
    limiter = Limiter(
        key_func=get_remote_address,
        default_limits=[os.environ.get("TUTORIAL_RATE_LIMIT", "100/second")],
        storage_uri=redis_url,
    )
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["db"] = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
        # Waits for a free connection: redis-py's default pool fails past 100 at once.
        pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=100)
        state["redis"] = redis.Redis(connection_pool=pool)
        try:
            yield
        finally:
            await state["redis"].aclose()
            await pool.aclose()
            await state["db"].close()

    def url(request: Request, row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "url": f"{request.base_url}todos/{row['id']}"}

    async def get_todo(request: Request) -> JSONResponse:
        todo_id = request.path_params["todo_id"]
        key = f"todo:{todo_id}"
        cached = await state["redis"].get(key)
        if cached is not None:
            return JSONResponse(json.loads(cached))
        row = await state["db"].fetchrow(f"SELECT {_COLUMNS} FROM todos WHERE id = $1", todo_id)
        if row is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        todo = url(request, _row(row))
        await state["redis"].setex(key, _TTL, json.dumps(todo))
        return JSONResponse(todo)

    async def list_todos(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "100"))
        key = f"todos:list:{limit}"
        cached = await state["redis"].get(key)
        if cached is not None:
            return JSONResponse(json.loads(cached))
        rows = await state["db"].fetch(f"SELECT {_COLUMNS} FROM todos ORDER BY id LIMIT $1", limit)
        todos = [url(request, _row(row)) for row in rows]
        await state["redis"].setex(key, _TTL, json.dumps(todos))
        return JSONResponse(todos)

    async def create_todo(request: Request, body: dict[str, Any]) -> JSONResponse:
        row = await state["db"].fetchrow(
            f'INSERT INTO todos (title, description, completed, "order") '
            f"VALUES ($1, $2, $3, $4) RETURNING {_COLUMNS}",
            body["title"], body.get("description", ""), body.get("completed", False),
            body.get("order"),
        )  # fmt: skip
        todo = url(request, _row(row))
        return JSONResponse(todo, status_code=201, headers={"Location": todo["url"]})

    async def patch_todo(request: Request, body: dict[str, Any]) -> JSONResponse:
        row = await state["db"].fetchrow(
            "UPDATE todos SET title = COALESCE($2, title), completed = COALESCE($3, completed), "
            f"updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
            request.path_params["todo_id"], body.get("title"), body.get("completed"),
        )  # fmt: skip
        if row is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        return JSONResponse(url(request, _row(row)))

    async def write(request: Request, handler: Writer) -> JSONResponse:
        """A write needs the bearer token the Todo API's writes need; the body is JSON."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            jwt.decode(token, secret, algorithms=["HS256"], audience="todo-api", issuer="todo")
        except jwt.InvalidTokenError:
            scheme = ""
        if scheme.lower() != "bearer":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        return await handler(request, await request.json())

    async def todos(request: Request) -> JSONResponse:
        if request.method == "POST":
            return await write(request, create_todo)
        return await list_todos(request)

    async def todo(request: Request) -> JSONResponse:
        if request.method == "PATCH":
            return await write(request, patch_todo)
        return await get_todo(request)

    app = Starlette(
        routes=[
            Route("/todos", todos, methods=["GET", "POST"]),
            Route("/todos/{todo_id:int}", todo, methods=["GET", "PATCH"]),
        ],
        exception_handlers={RateLimitExceeded: _too_many_requests},
        lifespan=lifespan,
    )
    app.state.limiter = limiter
    app.add_middleware(SlowAPIMiddleware)
    return app


def ceiling_app() -> Starlette:
    """Bare Starlette routes answering constant todos (one at any id, or a page): the ceiling.

    `GET /todos?limit=N` answers N todos, as large a body as the Todo API's page.
    """

    async def todo(request: Request) -> JSONResponse:
        return JSONResponse({**_TODO, "id": request.path_params["todo_id"]})

    async def todos(request: Request) -> JSONResponse:
        limit = int(request.query_params.get("limit", "100"))
        return JSONResponse([{**_TODO, "id": n} for n in range(1, limit + 1)])

    return Starlette(routes=[Route("/todos", todos), Route("/todos/{todo_id:int}", todo)])


def _row(row: asyncpg.Record) -> dict[str, Any]:
    todo = dict(row)
    todo["created_at"] = todo["created_at"].isoformat()
    return todo


def _too_many_requests(request: Request, exc: Exception) -> Response:
    """The 429 of slowapi (whose handler is typed for its own exception only)."""
    assert isinstance(exc, RateLimitExceeded)
    return _rate_limit_exceeded_handler(request, exc)
