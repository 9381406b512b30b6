"""The OpenAPI builder: a tiny app described once, its document valid OpenAPI 3.1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from todo.http import (
    Operation,
    Param,
    Problem,
    Reply,
    openapi_document,
    openapi_route,
    problem_handlers,
)

if TYPE_CHECKING:
    from starlette.requests import Request


class Note(msgspec.Struct):
    """A note."""

    id: int
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    pinned: bool = False


class NoteIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new note."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


NOTES = {1: Note(1, "first")}


async def list_notes(request: Request) -> Response:
    """All notes."""
    return Response(msgspec.json.encode(list(NOTES.values())), media_type="application/json")


async def create_note(request: Request) -> Response:
    """Add a note."""
    new = msgspec.json.decode(await request.body(), type=NoteIn)
    note = Note(len(NOTES) + 1, new.text)
    return JSONResponse(msgspec.to_builtins(note), 201, {"Location": f"/notes/{note.id}"})


async def get_note(request: Request) -> Response:
    """One note."""
    note_id = request.path_params["id"]
    if note_id not in NOTES:
        raise Problem(404, f"No note {note_id}.")
    return JSONResponse(msgspec.to_builtins(NOTES[note_id]))


OPERATIONS = (
    Operation(
        "GET",
        "/notes",
        "List notes",
        parameters=(Param("limit", "query", Annotated[int, msgspec.Meta(ge=1, le=100)]),),
        responses={200: Reply(list[Note], headers={"Link": "The next page."})},
        tags=("notes",),
    ),
    Operation(
        "POST",
        "/notes",
        "Create a note",
        request=NoteIn,
        responses={201: Reply(Note, headers={"Location": "The new note's URL."})},
        scopes=("notes:write",),
    ),
    Operation("GET", "/notes/{id:int}", "Get a note", responses={200: Note}, errors=(404,)),
    Operation(
        "DELETE",
        "/notes/{id:int}",
        "Delete a note",
        responses={204: None},
        errors=(404,),
        scopes=(),
        operation_id="remove_note",
    ),
)


def document(*, bearer_auth: bool = True) -> dict[str, Any]:
    """The sample app's document."""
    return openapi_document(OPERATIONS, title="Notes", version="1.2.3", bearer_auth=bearer_auth)


def app() -> Starlette:
    """The sample app, serving its document."""
    return Starlette(
        routes=[
            Route("/notes", list_notes, methods=["GET"]),
            Route("/notes", create_note, methods=["POST"]),
            Route("/notes/{id:int}", get_note, methods=["GET"]),
            openapi_route(document()),
        ],
        exception_handlers=problem_handlers(),
    )


@pytest.mark.parametrize("bearer_auth", [True, False])
def test_the_document_is_valid_openapi_3_1(bearer_auth: bool) -> None:
    """The document is valid openapi 3 1."""
    built = document(bearer_auth=bearer_auth)
    assert built["openapi"] == "3.1.0"
    validate(built)  # against the OpenAPI 3.1 meta-schema; raises when invalid


def test_the_app_serves_the_document() -> None:
    """The app serves the document."""
    response = TestClient(app()).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document()


def test_paths_drop_convertors_and_type_path_parameters() -> None:
    """Paths drop convertors and type path parameters."""
    paths = document()["paths"]
    assert list(paths) == ["/notes", "/notes/{id}"]
    assert list(paths["/notes"]) == ["get", "post"]
    assert paths["/notes/{id}"]["get"]["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    assert paths["/notes"]["get"]["parameters"] == [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
        }
    ]


def test_bodies_refer_to_the_msgspec_schemas() -> None:
    """Bodies refer to the msgspec schemas."""
    built = document()
    create = built["paths"]["/notes"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NoteIn"
    }
    created = create["responses"]["201"]
    assert created["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Note"}
    assert created["headers"]["Location"]["description"] == "The new note's URL."
    listed = built["paths"]["/notes"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Note"}}
    schemas = built["components"]["schemas"]
    assert set(schemas) == {"Note", "NoteIn", "ProblemDetails", "InvalidField"}
    assert schemas["NoteIn"]["additionalProperties"] is False
    assert schemas["Note"]["properties"]["text"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
    }


def test_errors_are_problems_with_their_headers() -> None:
    """Errors are problems with their headers."""
    built = document()
    create = built["paths"]["/notes"]["post"]["responses"]
    assert set(create) == {"201", "400", "401", "403", "413", "422", "429", "503", "4XX", "5XX"}
    problem = {"$ref": "#/components/schemas/ProblemDetails"}
    assert create["422"]["content"] == {"application/problem+json": {"schema": problem}}
    assert "WWW-Authenticate" in create["401"]["headers"]
    assert create["429"] == {"$ref": "#/components/responses/TooManyRequests"}
    shared = built["components"]["responses"]
    assert set(shared["TooManyRequests"]["headers"]) == {
        "Retry-After",
        "RateLimit",
        "RateLimit-Policy",
    }
    assert set(shared["ServiceUnavailable"]["headers"]) == {"Retry-After"}
    get = built["paths"]["/notes/{id}"]["get"]["responses"]
    assert set(get) == {"200", "404", "429", "503", "4XX", "5XX"}
    assert get["404"]["description"] == "Not Found (RFC 9457 problem details)."


def test_security_follows_the_scopes() -> None:
    """Security follows the scopes."""
    built = document()
    notes, note = built["paths"]["/notes"], built["paths"]["/notes/{id}"]
    assert "security" not in notes["get"]
    assert notes["post"]["security"] == [{"bearerAuth": ["notes:write"]}]
    assert note["delete"]["security"] == [{"bearerAuth": []}]
    assert note["delete"]["operationId"] == "remove_note"
    assert note["get"]["operationId"] == "get_notes_id"
    assert built["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    unauthenticated = document(bearer_auth=False)
    assert "securitySchemes" not in unauthenticated["components"]
    post = unauthenticated["paths"]["/notes"]["post"]
    assert "security" not in post
    assert "401" not in post["responses"]


def test_the_document_tells_the_truth_about_the_app() -> None:
    """Answers of the sample app match the schemas the document gives for them."""
    built = document()
    client = TestClient(app())

    def check(response: Any, schema: dict[str, Any]) -> None:
        resolver = {"components": built["components"], **schema}
        validate_instance(response.json(), resolver, cls=OAS31Validator)

    ok = built["paths"]["/notes/{id}"]["get"]["responses"]
    check(client.get("/notes/1"), ok["200"]["content"]["application/json"]["schema"])
    check(client.get("/notes/9"), ok["404"]["content"]["application/problem+json"]["schema"])
    invalid = client.post("/notes", json={"text": ""})
    assert invalid.status_code == 422
    check(invalid, {"$ref": "#/components/schemas/ProblemDetails"})


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        (
            [Operation("GET", "/a", "A", responses={}), Operation("GET", "/a", "B", responses={})],
            "described twice",
        ),
        (
            [
                Operation("GET", "/a/{id:int}", "A", responses={}),
                Operation("GET", "/a/{id}", "B", responses={}),
            ],
            "described twice",
        ),
    ],
)
def test_an_operation_described_twice_is_refused(operations: list[Operation], message: str) -> None:
    """An operation described twice is refused."""
    with pytest.raises(ValueError, match=message):
        openapi_document(operations, title="x", version="1")


def test_a_malformed_operation_is_refused() -> None:
    """A malformed operation is refused."""
    with pytest.raises(ValueError, match="method"):
        Operation("FETCH", "/a", "A", responses={})
    with pytest.raises(ValueError, match="not an HTTP status"):
        Operation("GET", "/a", "A", responses={2000: None})
    with pytest.raises(ValueError, match="no path parameter"):
        Operation("GET", "/a", "A", responses={}, parameters=(Param("id", "path", int),))
