"""`/openapi.json`: a valid OpenAPI 3.1 document describing every route the app serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openapi_spec_validator import validate

if TYPE_CHECKING:
    import httpx


async def test_the_document_is_valid_and_covers_every_operation(client: httpx.AsyncClient) -> None:
    """Every todo route and method is described; the document passes the validator."""
    response = await client.get("/openapi.json")
    assert 200 == response.status_code
    document = response.json()
    validate(document)
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    expected = {
        ("GET", "/todos"),
        ("POST", "/todos"),
        ("DELETE", "/todos"),
        ("GET", "/todos/{todo_id}"),
        ("PATCH", "/todos/{todo_id}"),
        ("DELETE", "/todos/{todo_id}"),
    }
    assert expected == operations
    create = document["paths"]["/todos"]["post"]
    assert {"201", "401", "403", "413", "415", "422", "429", "503"} <= set(create["responses"])
