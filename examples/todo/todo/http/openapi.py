"""An OpenAPI 3.1 document from routes described once, with msgspec's JSON Schema.

```python
OPERATIONS = (
    Operation("GET", "/todos/{id:int}", "Get a todo", responses={200: Todo}, errors=(404,)),
    Operation(
        "POST", "/todos", "Create a todo", request=TodoIn, scopes=("todos:write",),
        responses={201: Reply(Todo, headers={"Location": "The new todo's URL."})},
    ),
)
document = openapi_document(OPERATIONS, title="Todo API", version="1.0.0")
routes.append(openapi_route(document))  # GET /openapi.json
```

What every operation gets without saying so:

- its path parameters, typed from the route's convertor (`{id:int}` is an integer)
  unless a `Param` describes them;
- with a request body: `400` (malformed JSON), `413` (too large), `422` (wrong shape);
- with `scopes` (bearer auth): `401` with `WWW-Authenticate`, `403`;
- `429` with `Retry-After`, `RateLimit` and `RateLimit-Policy`, `503` with
  `Retry-After`, and `4XX`/`5XX`: every error is `application/problem+json`.

Types become `components/schemas` entries through `msgspec.json.schema_components`,
so the schema the document promises is the one the decoder enforces.
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from starlette.responses import Response
from starlette.routing import Route

from todo.http.problem import PROBLEM_MEDIA_TYPE, ProblemDetails, status_phrase

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from starlette.requests import Request

__all__ = ("Operation", "Param", "Reply", "openapi_document", "openapi_route")

_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})
_PATH_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")
_CONVERTOR_TYPES: Mapping[str, object] = {"int": int, "float": float}
_SCHEMAS = "#/components/schemas/{name}"
_RESPONSES = "#/components/responses/"
_INTEGER_SECONDS = {"type": "integer", "minimum": 0}
_BEARER = "bearerAuth"


@dataclass(frozen=True, slots=True)
class Param:
    """A query, header or path parameter.

    Attributes:
        name: Its name as it appears in the request.
        location: Where it appears.
        type: Its type, as msgspec would decode it (`int`, `bool`,
            `Annotated[int, Meta(ge=1, le=100)]`, ...).
        description: What it means.
        required: Whether requests must send it (path parameters always do).
    """

    name: str
    location: Literal["query", "header", "path"] = "query"
    type: object = str
    description: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful response: its body type and headers.

    Attributes:
        type: The JSON body's type; `None` for no body (`204`).
        description: What it is; the status phrase by default.
        headers: Response headers it carries: name -> description.
    """

    type: object = None
    description: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Operation:
    """One route and method, described once for the document.

    Attributes:
        method: The HTTP method, e.g. `"PATCH"`.
        path: The route's path as Starlette writes it, convertors included
            (`/todos/{id:int}`).
        summary: One line saying what it does.
        responses: Success status -> body type, or a `Reply` for more than the type.
        request: The JSON request body's type; `None` for no body.
        parameters: Query and header parameters, and path ones to say more
            than their type.
        errors: The error statuses the route itself answers (`404`, `409`, ...).
        scopes: Bearer-token scopes it needs; `None` when it is public, `()` for
            any valid token.
        description: More words, when the summary is not enough.
        operation_id: A unique name; `method_path_words` by default.
        tags: Groups it belongs to.
    """

    method: str
    path: str
    summary: str
    _: KW_ONLY
    responses: Mapping[int, object]
    request: object = None
    parameters: Sequence[Param] = ()
    errors: Sequence[int] = ()
    scopes: Sequence[str] | None = None
    description: str = ""
    operation_id: str = ""
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.method.upper() not in _METHODS:
            raise ValueError(f"method must be one of {sorted(_METHODS)}, not {self.method!r}")
        for status in (*self.responses, *self.errors):
            if not 100 <= status <= 599:
                raise ValueError(f"{self.method} {self.path}: {status} is not an HTTP status")
        in_path = {match[1] for match in _PATH_PARAM.finditer(self.path)}
        declared = {param.name for param in self.parameters if param.location == "path"}
        if stray := declared - in_path:
            raise ValueError(f"{self.method} {self.path}: no path parameter {sorted(stray)}")

    @property
    def template(self) -> str:
        """The path as OpenAPI writes it, convertors dropped: `/todos/{id}`."""
        return _PATH_PARAM.sub(r"{\1}", self.path)

    @property
    def name(self) -> str:
        """The operation id, given or made from the method and the path's words."""
        words = re.findall(r"\w+", self.template)
        return self.operation_id or "_".join([self.method.lower(), *words])


def openapi_document(
    operations: Sequence[Operation],
    *,
    title: str,
    version: str,
    description: str = "",
    bearer_auth: bool = True,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing `operations`.

    Args:
        operations: Every documented route and method.
        title: The API's name.
        version: The API's version (not OpenAPI's).
        description: What the API is, in Markdown.
        bearer_auth: Document the bearer-token security; `False` drops it (and the
            `401`/`403` answers) for a service run without auth.

    Raises:
        ValueError: Two operations share a method and path, or an operation id.
    """
    _check_unique(operations)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        described = _operation(operation, bearer_auth=bearer_auth)
        paths.setdefault(operation.template, {})[operation.method.lower()] = described
    info = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {"schemas": _components(operations), "responses": _shared_responses()},
    }
    if bearer_auth:
        document["components"]["securitySchemes"] = {
            _BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
    return document


def openapi_route(document: Mapping[str, Any], path: str = "/openapi.json") -> Route:
    """A `GET path` route serving `document`, encoded once."""
    body = msgspec.json.encode(document)

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route(path, openapi, methods=["GET"], name="openapi", include_in_schema=False)


def _check_unique(operations: Sequence[Operation]) -> None:
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    for operation in operations:
        key = (operation.method.upper(), operation.template)
        if key in seen or operation.name in names:
            raise ValueError(f"{operation.method} {operation.path} is described twice")
        seen.add(key)
        names.add(operation.name)


def _schema(type_: object) -> dict[str, Any]:
    """The schema of one type, naming its Structs by reference into the components."""
    (schema,), _ = msgspec.json.schema_components([type_], ref_template=_SCHEMAS)
    return schema


def _components(operations: Sequence[Operation]) -> dict[str, Any]:
    """The named schemas (Structs, enums) every type of every operation refers to."""
    types = [ProblemDetails, *_types(operations)]
    return msgspec.json.schema_components(types, ref_template=_SCHEMAS)[1]


def _types(operations: Iterable[Operation]) -> Iterable[object]:
    for operation in operations:
        yield from (param.type for param in _parameters(operation))
        if operation.request is not None:
            yield operation.request
        for reply in map(_reply, operation.responses.values()):
            if reply.type is not None:
                yield reply.type


def _operation(operation: Operation, *, bearer_auth: bool) -> dict[str, Any]:
    described: dict[str, Any] = {"operationId": operation.name, "summary": operation.summary}
    if operation.description:
        described["description"] = operation.description
    if operation.tags:
        described["tags"] = list(operation.tags)
    if parameters := _parameters(operation):
        described["parameters"] = [_parameter(param) for param in parameters]
    errors = set(operation.errors)
    if operation.request is not None:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(operation.request)}},
        }
        errors |= {400, 413, 422}
    if bearer_auth and operation.scopes is not None:
        described["security"] = [{_BEARER: list(operation.scopes or ())}]
        errors |= {401, 403}
    responses = {
        str(status): _success(status, _reply(body)) for status, body in operation.responses.items()
    }
    responses.update((str(status), _problem(status)) for status in sorted(errors))
    responses.update((status, dict(ref)) for status, ref in _COMMON_ERRORS.items())
    described["responses"] = responses
    return described


def _parameters(operation: Operation) -> list[Param]:
    """The declared parameters, plus the path ones left undeclared, typed by convertor."""
    declared = {param.name for param in operation.parameters if param.location == "path"}
    implied = [
        Param(match[1], "path", _CONVERTOR_TYPES.get(match[2] or "", str))
        for match in _PATH_PARAM.finditer(operation.path)
        if match[1] not in declared
    ]
    return [*operation.parameters, *implied]


def _parameter(param: Param) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": param.name,
        "in": param.location,
        "required": param.required or param.location == "path",
        "schema": _schema(param.type),
    }
    if param.description:
        described["description"] = param.description
    return described


def _reply(body: object) -> Reply:
    return body if isinstance(body, Reply) else Reply(body)


def _success(status: int, reply: Reply) -> dict[str, Any]:
    described: dict[str, Any] = {"description": reply.description or status_phrase(status)}
    if reply.headers:
        described["headers"] = {name: _header(text) for name, text in reply.headers.items()}
    if reply.type is not None:
        described["content"] = {"application/json": {"schema": _schema(reply.type)}}
    return described


def _problem(status: int | str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    phrase = status_phrase(status) if isinstance(status, int) else f"Any {status} error"
    schema = {"$ref": _SCHEMAS.format(name=ProblemDetails.__name__)}
    described: dict[str, Any] = {
        "description": f"{phrase} (RFC 9457 problem details).",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
    }
    if status == 401:
        described["headers"] = {"WWW-Authenticate": _header("The scheme to use: Bearer.")}
    if headers:
        described["headers"] = dict(headers)
    return described


def _header(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": dict(schema or {"type": "string"})}


def _shared_responses() -> dict[str, Any]:
    retry_after = _header("Seconds to wait before trying again.", _INTEGER_SECONDS)
    return {
        "TooManyRequests": _problem(
            429,
            {
                "Retry-After": retry_after,
                "RateLimit": _header("The quota left (draft-ietf-httpapi-ratelimit-headers)."),
                "RateLimit-Policy": _header("The quota policies that apply."),
            },
        ),
        "ServiceUnavailable": _problem(
            503, {"Retry-After": retry_after | {"description": "When a dependency is paused."}}
        ),
        "ClientError": _problem("4XX"),
        "ServerError": _problem("5XX"),
    }


_COMMON_ERRORS = {
    "429": {"$ref": _RESPONSES + "TooManyRequests"},
    "503": {"$ref": _RESPONSES + "ServiceUnavailable"},
    "4XX": {"$ref": _RESPONSES + "ClientError"},
    "5XX": {"$ref": _RESPONSES + "ServerError"},
}
