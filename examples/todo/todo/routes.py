"""The HTTP endpoints of the Todo-Backend contract: thin handlers over the repository.

A handler checks who is asking (`auth.py`), decodes the body into a model
(`models.py`: msgspec refuses bad JSON, wrong types and unknown fields), calls the
repository, and encodes the answer. Errors are raised, never built here: a
`Problem` for what the handler knows (404, 401, 403, 415), the repository's and
the decoder's own exceptions for the rest; `todo.http`'s handlers turn each into
`application/problem+json` (an open breaker into 503 with `Retry-After`).

| Route | Does | Answers |
| --- | --- | --- |
| `GET /todos?limit&after&completed` | a page by id; next page in `Link` | 200, an array |
| `POST /todos` | create, with its notification (outbox) | 201 + `Location` |
| `DELETE /todos` | delete every todo (scope `todos:admin`) | 204 |
| `GET /todos/{id}` | one todo | 200 or 404 |
| `PATCH /todos/{id}` | change the fields sent | 200 or 404 |
| `DELETE /todos/{id}` | delete one todo | 204 or 404 |
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, TypeAlias, TypeVar

import msgspec
from msgspec import Meta
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.routing import Route

from todo.auth import ADMIN, WRITE, authorize
from todo.http import JSON_MEDIA_TYPE, JsonReply, MethodEndpoint, Operation, Param, Problem, Reply
from todo.models import Todo, TodoIn, TodoPatch
from todo.urls import PublicUrls

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from starlette.requests import Request
    from starlette.types import ASGIApp

    from todo.models import TodoRecord
    from todo.repository import TodoRepository
    from todo.settings import Settings

__all__ = ("DEFAULT_PAGE", "MAX_PAGE", "OPERATIONS", "TodoRoutes")

T = TypeVar("T")
Handler: TypeAlias = "Callable[[Request], Awaitable[ASGIApp]]"

DEFAULT_PAGE = 100
"""Todos per page when `limit` is not given."""
MAX_PAGE = 1000
"""The largest `limit` accepted."""
_LARGEST_ID = 2**63 - 1  # bigint: a larger id names no todo
_ITEM = "/todos/{todo_id:int}"
_encoder = msgspec.json.Encoder()
_KEPT_REPLIES = 1024
"""Encoded todos kept (`_todo_reply`): the hot ones; a 10 kB description makes 10 MB."""


class TodoRoutes:
    """The todo endpoints, bound to the service's repository.

    Args:
        repository: Where todos live.
        settings: Auth mode, secret and trusted proxies.
    """

    def __init__(self, repository: TodoRepository, settings: Settings) -> None:
        self._repository = repository
        self._settings = settings
        self._urls = PublicUrls(settings.trusted_proxies)

    def routes(self) -> list[Route]:
        """The Starlette routes: one per path, so a 405 lists every method in `Allow`.

        The item's first: Starlette tries routes in order, and reads by id are the most
        frequent requests (the two paths never both match).
        """
        return [
            _route(
                _ITEM,
                "todo",
                {"GET": self.get_todo, "PATCH": self.patch_todo, "DELETE": self.delete_todo},
            ),
            _route(
                "/todos",
                "todos",
                {"GET": self.list_todos, "POST": self.create_todo, "DELETE": self.delete_todos},
            ),
        ]

    async def list_todos(self, request: Request) -> ASGIApp:
        """`GET /todos`: a page of todos as a bare JSON array; `Link: <...>; rel="next"`."""
        limit = _int_param(request, "limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_PAGE
        after = _int_param(request, "after", minimum=0, maximum=_LARGEST_ID)
        completed = _bool_param(request, "completed")
        # One more than asked for tells whether a next page exists.
        records = await self._repository.page(limit=limit + 1, after=after, completed=completed)
        page = records[:limit]
        origin = self._urls.origin(request)
        headers = []
        if len(records) > limit:
            # Whole numbers and true/false: nothing to quote (urlencode's work, per request).
            query = f"limit={limit}&after={page[-1].id}"
            if completed is not None:
                query += f"&completed={str(completed).lower()}"
            headers.append((b"link", f'<{origin}/todos?{query}>; rel="next"'.encode()))
        return JsonReply(
            _encoder.encode([_shown(record, origin) for record in page]), headers=headers
        )

    # --8<-- [start:create]
    async def create_todo(self, request: Request) -> ASGIApp:
        """`POST /todos`: 201 with the todo and its `Location`."""
        authorize(request, self._settings, WRITE)
        data = await _body(request, TodoIn)
        # The notification commits with the todo; the worker's relay enqueues it.
        record = await self._repository.create(data)
        todo = _shown(record, self._urls.origin(request))
        return JsonReply(_encoder.encode(todo), 201, [(b"location", todo.url.encode())])

    # --8<-- [end:create]

    async def delete_todos(self, request: Request) -> ASGIApp:
        """`DELETE /todos`: every todo (scope `todos:admin`)."""
        authorize(request, self._settings, ADMIN)
        await self._repository.delete_all()
        return Response(status_code=204)

    async def get_todo(self, request: Request) -> ASGIApp:
        """`GET /todos/{id}`: a cached todo is encoded once per origin (`_todo_reply`)."""
        todo_id = _todo_id(request)
        record = await self._repository.get(todo_id)
        if record is None:
            raise _not_found(todo_id)
        return _todo_reply(record, self._urls.origin(request))

    async def patch_todo(self, request: Request) -> ASGIApp:
        """`PATCH /todos/{id}`: change the fields sent, keep the others."""
        authorize(request, self._settings, WRITE)
        todo_id = _todo_id(request)
        patch = await _body(request, TodoPatch)
        record = await self._repository.update(todo_id, patch)
        if record is None:
            raise _not_found(todo_id)
        return _todo_reply(record, self._urls.origin(request))

    async def delete_todo(self, request: Request) -> ASGIApp:
        """`DELETE /todos/{id}`."""
        authorize(request, self._settings, WRITE)
        todo_id = _todo_id(request)
        if not await self._repository.delete(todo_id):
            raise _not_found(todo_id)
        return Response(status_code=204)


OPERATIONS = (
    Operation(
        "GET",
        "/todos",
        "List todos",
        description="A page of todos by id, as a bare array; the next page's URL is in "
        '`Link: <...>; rel="next"`.',
        parameters=(
            Param("limit", type=Annotated[int, Meta(ge=1, le=MAX_PAGE)], description="Page size."),
            Param(
                "after",
                type=Annotated[int, Meta(ge=0, le=_LARGEST_ID)],
                description="Only todos with a larger id (the cursor of the `Link` header).",
            ),
            Param("completed", type=bool, description="Only completed (or open) todos."),
        ),
        responses={200: Reply(list[Todo], headers={"Link": "The next page, if any."})},
        errors=(400,),
    ),
    Operation(
        "POST",
        "/todos",
        "Create a todo",
        request=TodoIn,
        responses={201: Reply(Todo, headers={"Location": "The new todo's URL."})},
        errors=(415,),
        scopes=(WRITE,),
    ),
    Operation(
        "DELETE",
        "/todos",
        "Delete every todo",
        responses={204: Reply(None)},
        scopes=(ADMIN,),
    ),
    Operation("GET", _ITEM, "Get a todo", responses={200: Todo}, errors=(404,)),
    Operation(
        "PATCH",
        _ITEM,
        "Change a todo",
        description="Changes the fields sent and keeps the others.",
        request=TodoPatch,
        responses={200: Todo},
        errors=(404, 415),
        scopes=(WRITE,),
    ),
    Operation(
        "DELETE",
        _ITEM,
        "Delete a todo",
        responses={204: Reply(None)},
        errors=(404,),
        scopes=(WRITE,),
    ),
)
"""The routes as the OpenAPI document describes them."""


def _route(path: str, name: str, handlers: Mapping[str, Handler]) -> Route:
    """One route serving each method with its handler (HEAD as GET)."""
    return Route(path, MethodEndpoint(handlers), methods=list(handlers), name=name)


def _shown(record: TodoRecord, origin: str) -> Todo:
    return Todo.from_record(record, f"{origin}/todos/{record.id}")


@functools.lru_cache(maxsize=_KEPT_REPLIES)
def _todo_reply(record: TodoRecord, origin: str) -> JsonReply:
    """The 200 answer showing `record`, kept: an L1 hit returns the same record again.

    Keyed by the record's value (every field, `updated_at` too), never by its identity:
    a write or another replica's invalidation brings a new record, hence a new reply.
    """
    return JsonReply(_encoder.encode(_shown(record, origin)))


async def _body(request: Request, kind: type[T]) -> T:
    """The JSON body as `kind`; msgspec's errors become 400 (bad JSON) or 422 (wrong shape)."""
    media_type = (
        request.headers.get("content-type", JSON_MEDIA_TYPE).partition(";")[0].strip().lower()
    )
    if media_type != JSON_MEDIA_TYPE and not media_type.endswith("+json"):
        raise Problem(415, f"Send the todo as {JSON_MEDIA_TYPE}, not {media_type or 'nothing'}.")
    return msgspec.json.decode(await request.body(), type=kind)


def _todo_id(request: Request) -> int:
    todo_id: int = request.path_params["todo_id"]
    if todo_id > _LARGEST_ID:
        raise _not_found(todo_id)
    return todo_id


def _not_found(todo_id: int) -> Problem:
    return Problem(404, f"There is no todo {todo_id}.")


def _query(request: Request, name: str) -> str | None:
    """The one value of a query parameter; `None` when absent.

    An empty value (`?completed=`) is a value, refused by the caller's check: the OpenAPI
    document says boolean or integer, so it must not quietly mean "not given".
    """
    values = _parsed_query(request.scope["query_string"]).get(name, ())
    if len(values) > 1:  # `?after=x&after=` must not quietly mean "no cursor"
        raise Problem(400, f"{name} must be given once.")
    return values[0] if values else None


@functools.lru_cache(maxsize=256)
def _parsed_query(query_string: bytes) -> Mapping[str, tuple[str, ...]]:
    """Each parameter's values, as Starlette parses them; kept, as clients repeat queries."""
    params = QueryParams(query_string)
    return {name: tuple(params.getlist(name)) for name in params}


def _int_param(request: Request, name: str, *, minimum: int, maximum: int) -> int | None:
    raw = _query(request, name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise Problem(400, f"{name} must be a whole number from {minimum} to {maximum}.")
    return int(raw)


def _bool_param(request: Request, name: str) -> bool | None:
    raw = _query(request, name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise Problem(400, f"{name} must be true or false.")
    return raw == "true"
