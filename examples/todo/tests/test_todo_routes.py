"""Every route of the Todo API, in-process, against real PostgreSQL and Redis."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import httpx
import pytest
from todo_support import admin_headers, assert_problem, write_headers

from todo.app import create_app

if TYPE_CHECKING:
    from todo.settings import Settings


async def create(
    client: httpx.AsyncClient, settings: Settings, **fields: object
) -> dict[str, object]:
    """POST a todo; return its body."""
    response = await client.post("/todos", json=fields, headers=write_headers(settings))
    assert 201 == response.status_code, response.text
    body: dict[str, object] = response.json()
    return body


async def test_a_created_todo_is_answered_201_with_its_location(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """POST /todos: 201, `Location` = the todo's absolute url, defaults filled in."""
    response = await client.post(
        "/todos", json={"title": "buy milk", "order": 2}, headers=write_headers(settings)
    )
    assert 201 == response.status_code
    todo = response.json()
    assert "application/json" == response.headers["content-type"]
    assert f"http://testserver/todos/{todo['id']}" == todo["url"] == response.headers["location"]
    expected = {"title": "buy milk", "description": "", "completed": False, "order": 2}
    assert expected == {key: todo[key] for key in expected}
    assert todo["created_at"] == todo["updated_at"]


async def test_a_todo_is_read_by_its_url(client: httpx.AsyncClient, settings: Settings) -> None:
    """GET /todos/{id} answers what POST stored (read twice: the second from the cache)."""
    todo = await create(client, settings, title="read me", description="twice")
    for _ in range(2):
        response = await client.get(f"/todos/{todo['id']}")
        assert 200 == response.status_code
        assert todo == response.json()


async def test_the_list_is_a_bare_array_in_id_order(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """GET /todos: a JSON array (Todo-Backend), oldest first, no `Link` on the last page."""
    assert [] == (await client.get("/todos")).json()
    first = await create(client, settings, title="one")
    second = await create(client, settings, title="two")
    response = await client.get("/todos")
    assert [first, second] == response.json()
    assert "link" not in response.headers


async def test_head_answers_like_get_without_a_body(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """HEAD on the collection and on a todo: GET's status and headers, no body."""
    todo = await create(client, settings, title="headless")
    for url in ("/todos", str(todo["url"])):
        response = await client.head(url)
        assert (200, b"") == (response.status_code, response.content)
        assert "application/json" == response.headers["content-type"]


async def test_pages_follow_the_link_header(client: httpx.AsyncClient, settings: Settings) -> None:
    """`limit` cuts pages; `Link: <...after=ID>; rel="next"` leads to the next one."""
    todos = [await create(client, settings, title=f"todo {n}") for n in range(5)]
    seen: list[object] = []
    url: str | None = "/todos?limit=2"
    while url is not None:
        response = await client.get(url)
        assert 200 == response.status_code
        seen.extend(response.json())
        link = response.headers.get("link")
        match = re.fullmatch(r'<([^>]+)>; rel="next"', link) if link else None
        url = match[1] if match else None
        assert (2 if url else 1) == len(response.json())
    assert todos == seen


async def test_the_completed_filter_keeps_its_pages(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """`completed=true|false` filters, and the `Link` keeps the filter."""
    todos = [await create(client, settings, title=f"t{n}", completed=n % 2 == 0) for n in range(5)]
    done = [todo for todo in todos if todo["completed"]]
    response = await client.get("/todos?completed=true&limit=2")
    assert done[:2] == response.json()
    assert response.headers["link"].endswith('completed=true>; rel="next"')
    assert f"after={done[1]['id']}" in response.headers["link"]
    assert [t for t in todos if not t["completed"]] == (
        await client.get("/todos?completed=false")
    ).json()


async def test_a_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """PATCH /todos/{id}: the fields sent change, `updated_at` moves, the rest stays."""
    todo = await create(client, settings, title="draft", description="keep me", order=1)
    response = await client.patch(
        str(todo["url"]),
        json={"completed": True, "title": "final"},
        headers=write_headers(settings),
    )
    assert 200 == response.status_code
    patched = response.json()
    assert {
        **todo,
        "completed": True,
        "title": "final",
        "updated_at": patched["updated_at"],
    } == patched
    assert patched["updated_at"] > todo["updated_at"]
    assert patched == (await client.get(str(todo["url"]))).json()


async def test_an_empty_patch_changes_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """PATCH with `{}` answers the todo as it is."""
    todo = await create(client, settings, title="as is")
    response = await client.patch(str(todo["url"]), json={}, headers=write_headers(settings))
    assert (200, todo) == (response.status_code, response.json())


async def test_a_deleted_todo_is_gone(client: httpx.AsyncClient, settings: Settings) -> None:
    """DELETE /todos/{id}: 204, then 404 for it and it leaves the list."""
    todo = await create(client, settings, title="short-lived")
    assert 200 == (await client.get(str(todo["url"]))).status_code  # cached now
    response = await client.delete(str(todo["url"]), headers=write_headers(settings))
    assert 204 == response.status_code
    assert_problem(await client.get(str(todo["url"])), 404)
    assert [] == (await client.get("/todos")).json()
    assert_problem(await client.delete(str(todo["url"]), headers=write_headers(settings)), 404)


async def test_delete_all_empties_the_list(client: httpx.AsyncClient, settings: Settings) -> None:
    """DELETE /todos (admin): 204; the list and every cached todo are gone."""
    todos = [await create(client, settings, title=f"t{n}") for n in range(3)]
    for todo in todos:
        await client.get(str(todo["url"]))  # cache each one
    assert 204 == (await client.delete("/todos", headers=admin_headers(settings))).status_code
    assert [] == (await client.get("/todos")).json()
    for todo in todos:
        assert_problem(await client.get(str(todo["url"])), 404)


async def test_a_todo_created_after_its_id_was_looked_up_is_found(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A 404 is cached too; creating the todo invalidates it."""
    assert_problem(await client.get("/todos/1"), 404)
    todo = await create(client, settings, title="first")
    assert 1 == todo["id"]
    assert 200 == (await client.get("/todos/1")).status_code


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_an_unknown_todo_is_a_404_problem(
    client: httpx.AsyncClient, settings: Settings, method: str
) -> None:
    """An id no todo has, even one too large for the database, is a 404 problem."""
    for todo_id in (424242, 2**70):
        response = await client.request(
            method, f"/todos/{todo_id}", json={}, headers=write_headers(settings)
        )
        body = assert_problem(response, 404)
        assert f"There is no todo {todo_id}." == body["detail"]


async def test_a_method_a_route_lacks_is_a_405_problem_with_allow(
    client: httpx.AsyncClient,
) -> None:
    """PUT is not part of the API: 405, `Allow` lists what is, in one order on every replica."""
    response = await client.put("/todos/1", json={})
    assert_problem(response, 405)
    assert "DELETE, GET, HEAD, PATCH" == response.headers["allow"]


async def test_urls_follow_forwarded_headers_of_trusted_proxies_only(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The test client's peer (127.0.0.1) is not trusted: its X-Forwarded-* are ignored."""
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-host": "todo.example"}
    todo = await create(client, settings, title="here")
    response = await client.get(str(todo["url"]), headers=forwarded)
    assert str(todo["url"]).startswith("http://testserver/")
    assert todo["url"] == response.json()["url"]


@pytest.mark.parametrize("trusted", [("127.0.0.1",), ("127.0.0.0/8", "10.0.0.0/8")])
async def test_a_trusted_proxy_names_the_public_url(
    settings: Settings, trusted: tuple[str, ...]
) -> None:
    """Behind a trusted proxy, `url` and `Location` use X-Forwarded-Proto and -Host."""
    app = create_app(dataclasses.replace(settings, trusted_proxies=trusted))
    forwarded = {"x-forwarded-proto": "https", "x-forwarded-host": "todo.example, inner"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.post(
                "/todos", json={"title": "t"}, headers={**forwarded, **write_headers(settings)}
            )
    assert response.headers["location"].startswith("https://todo.example/todos/")
    assert response.headers["location"] == response.json()["url"]


async def test_a_cached_todo_is_shown_with_the_url_of_each_request(
    settings: Settings,
) -> None:
    """A cached read keeps its encoded answer per origin: each Host, proxy or not, gets its own."""
    app = create_app(dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",)))
    async with app.router.lifespan_context(app):
        proxied = httpx.ASGITransport(app=app, client=("10.1.2.3", 4242))
        direct = httpx.ASGITransport(app=app, client=("192.0.2.9", 4242))
        async with (
            httpx.AsyncClient(transport=proxied, base_url="http://pod") as via_proxy,
            httpx.AsyncClient(transport=direct, base_url="http://pod") as client,
        ):
            todo = await create(client, settings, title="seen from everywhere")
            path = f"/todos/{todo['id']}"
            shown = {
                (host, forwarded): (
                    await (via_proxy if forwarded else client).get(
                        path,
                        headers={
                            "host": host,
                            **({"x-forwarded-host": forwarded} if forwarded else {}),
                        },
                    )
                ).json()["url"]
                for _ in range(2)  # the second answer of each is the one kept
                for host, forwarded in [
                    ("a.example", ""),
                    ("b.example:8080", ""),
                    ("a.example", "public.example"),
                    ("a.example", "other.example"),
                ]
            }
    assert {
        ("a.example", ""): f"http://a.example{path}",
        ("b.example:8080", ""): f"http://b.example:8080{path}",
        ("a.example", "public.example"): f"http://public.example{path}",
        ("a.example", "other.example"): f"http://other.example{path}",
    } == shown


async def test_a_cached_read_shows_the_patch_made_since(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """The answer kept for a cached todo is that of its value: after a PATCH, the new one."""
    todo = await create(client, settings, title="before")
    for title in ("after", "before"):  # back to the old title: `updated_at` still moved
        for _ in range(2):  # cached, then served from the kept answer
            read = (await client.get(str(todo["url"]))).json()
        patched = await client.patch(
            str(todo["url"]), json={"title": title}, headers=write_headers(settings)
        )
        assert patched.json() == (await client.get(str(todo["url"]))).json() != read
        assert title == patched.json()["title"]


async def test_json_answers_keep_their_header_order(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """`Location`/`Link` first, then `Content-Length` and `Content-Type`, as before."""
    created = await client.post("/todos", json={"title": "a"}, headers=write_headers(settings))
    await create(client, settings, title="b")
    read = await client.get(created.headers["location"])
    page = await client.get("/todos?limit=1")
    assert [b"location", b"content-length", b"content-type"] == [
        name for name, _ in created.headers.raw[:3]
    ]
    assert [b"content-length", b"content-type"] == [name for name, _ in read.headers.raw[:2]]
    assert (b"content-type", b"application/json") == read.headers.raw[1]
    assert str(len(read.content)).encode() == read.headers.raw[0][1]
    assert [b"link", b"content-length", b"content-type"] == [
        name for name, _ in page.headers.raw[:3]
    ]
