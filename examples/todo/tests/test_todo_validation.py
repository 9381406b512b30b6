"""Bad input is a 4xx `application/problem+json` answer, never a 500 nor a traceback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from todo_support import assert_problem, write_headers

from todo.models import MAX_TITLE

if TYPE_CHECKING:
    import httpx

    from todo.settings import Settings

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "pointer"),
    [
        (b'{"title": "unfinished', 400, None),  # bad JSON
        (b"", 400, None),
        (b'["a", "list"]', 422, None),  # not an object
        (b'{"title": 42}', 422, "#/title"),  # wrong type
        (b'{"title": "t", "completed": "yes"}', 422, "#/completed"),
        (b'{"title": "t", "order": 1.5}', 422, None),  # the detail names `order`
        (b'{"title": "t", "order": 2147483648}', 422, "#/order"),  # beyond PostgreSQL integer
        (b'{"title": ""}', 422, "#/title"),  # too short
        (b'{"title": "' + b"x" * (MAX_TITLE + 1) + b'"}', 422, "#/title"),  # 256 characters
        (b'{"title": "nul \\u0000 inside"}', 422, "#/title"),  # PostgreSQL text holds no NUL
        (b'{"title": "t", "owner": "mallory"}', 422, None),  # unknown field
        (b'{"description": "no title"}', 422, None),  # missing field
        (b'{"title": "lone \\ud800 surrogate"}', 400, None),  # not UTF-8 once decoded
    ],
)
async def test_a_bad_body_is_refused(
    client: httpx.AsyncClient, settings: Settings, body: bytes, status: int, pointer: str | None
) -> None:
    """POST /todos with a body that is not a valid todo: 400 or 422, nothing created."""
    response = await client.post(
        "/todos", content=body, headers={**JSON, **write_headers(settings)}
    )
    problem = assert_problem(response, status)
    if pointer is not None:
        assert [pointer] == [error["pointer"] for error in problem["errors"]]  # type: ignore[attr-defined]
    assert [] == (await client.get("/todos")).json()


async def test_a_title_of_255_characters_is_accepted(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The longest title allowed is 255 characters (the limit is inclusive)."""
    title = "é" * MAX_TITLE
    response = await client.post("/todos", json={"title": title}, headers=write_headers(settings))
    assert 201 == response.status_code
    assert title == response.json()["title"]


@pytest.mark.parametrize(("sent", "order"), [("7", 7), ("7.0", 7), ("1e3", 1000), ("-0.0", 0)])
async def test_a_whole_number_order_is_an_integer(
    client: httpx.AsyncClient, settings: Settings, sent: str, order: int
) -> None:
    """JSON Schema counts 7.0 as an integer, and so does the API (as the int 7)."""
    body = b'{"title": "t", "order": ' + sent.encode() + b"}"
    response = await client.post(
        "/todos", content=body, headers={**JSON, **write_headers(settings)}
    )
    assert (201, order) == (response.status_code, response.json()["order"])
    patched = await client.patch(
        response.json()["url"], content=body, headers={**JSON, **write_headers(settings)}
    )
    assert order == patched.json()["order"]
    assert isinstance(patched.json()["order"], int)


async def test_a_bad_patch_is_refused(client: httpx.AsyncClient, settings: Settings) -> None:
    """PATCH checks the fields it gets as POST does, and unknown ones are refused."""
    created = await client.post("/todos", json={"title": "t"}, headers=write_headers(settings))
    url = created.json()["url"]
    for body in ({"title": "x" * (MAX_TITLE + 1)}, {"completed": None}, {"id": 7}):
        assert_problem(await client.patch(url, json=body, headers=write_headers(settings)), 422)
    assert created.json() == (await client.get(url)).json()


async def test_a_huge_body_is_413_before_it_is_read(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A body over TODO_MAX_BODY_BYTES (64 KiB) is answered 413 problem+json."""
    body = b'{"title": "t", "description": "' + b"x" * (settings.max_body_bytes + 1) + b'"}'
    response = await client.post(
        "/todos", content=body, headers={**JSON, **write_headers(settings)}
    )
    assert_problem(response, 413)
    assert [] == (await client.get("/todos")).json()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, settings: Settings, content_type: str
) -> None:
    """A body sent as another media type is refused with 415."""
    headers = {"content-type": content_type, **write_headers(settings)}
    response = await client.post("/todos", content=b'{"title": "t"}', headers=headers)
    assert_problem(response, 415)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=-1",
        "limit=٣",  # an Arabic-Indic 3
        "after=-5",
        "after=1e3",
        "completed=yes",
        "after=true&after=",
        "limit=true&limit=5",
        "completed=true&completed=false",  # repeated
        "limit=",  # empty: the document says integer (allowEmptyValue is false)
        "after=",
        "completed=",
    ],
)
async def test_bad_query_parameters_are_400(client: httpx.AsyncClient, query: str) -> None:
    """`limit`, `after` and `completed` are checked: 400 problem+json."""
    assert_problem(await client.get(f"/todos?{query}"), 400)


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    """Paths the API does not have are 404 problem+json too."""
    for path in ("/nope", "/todos/abc", "/todos/1/x"):
        assert_problem(await client.get(path), 404)
