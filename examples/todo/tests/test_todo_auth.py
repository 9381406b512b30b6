"""Writes need a JWT with the right scope; reads are public; TODO_AUTH=none opens writes."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import httpx
import jwt
import pytest
from todo_support import assert_problem, write_headers

from todo.app import create_app
from todo.auth import ADMIN, AUDIENCE, ISSUER, WRITE, issue_token

if TYPE_CHECKING:
    from todo.settings import Settings

WRITES = [("POST", "/todos"), ("PATCH", "/todos/1"), ("DELETE", "/todos/1"), ("DELETE", "/todos")]


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"authorization": f"Bearer {token}"}


def signed(settings: Settings, **claims: object) -> str:
    """A token with these claims over valid defaults, signed with the service's secret."""
    now = int(time.time())
    defaults = {"sub": "t", "scope": f"{WRITE} {ADMIN}", "iss": ISSUER, "aud": AUDIENCE}
    payload = {**defaults, "iat": now, "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, settings.jwt_secret)


@pytest.mark.parametrize(("method", "path"), WRITES)
async def test_a_write_without_a_token_is_401_with_a_challenge(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """No token: 401 problem, `WWW-Authenticate: Bearer`."""
    response = await client.request(method, path, json={"title": "t"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.jwt", "Token abc"],
)
async def test_a_malformed_authorization_is_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    """Other schemes, an empty or malformed token: 401."""
    response = await client.post(
        "/todos", json={"title": "t"}, headers={"authorization": authorization}
    )
    assert_problem(response, 401)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 60},  # expired (past the 5 s leeway)
        {"aud": "another-api"},
        {"iss": "someone-else"},
        {"exp": None},  # no expiry at all
        {"sub": None},
    ],
)
async def test_an_invalid_token_is_401(
    client: httpx.AsyncClient, settings: Settings, claims: dict[str, object]
) -> None:
    """Expired, for another audience or issuer, or lacking a required claim: 401."""
    response = await client.post(
        "/todos", json={"title": "t"}, headers=bearer(signed(settings, **claims))
    )
    body = assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert body["detail"] in ("The token has expired.", "The token is invalid.")


async def test_a_token_signed_with_another_secret_is_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A forged signature is refused."""
    other = dataclasses.replace(settings, jwt_secret="x" * 40)
    response = await client.post("/todos", json={"title": "t"}, headers=bearer(signed(other)))
    assert_problem(response, 401)


async def test_a_token_without_the_scope_is_403(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A valid token lacking the scope: 403 with `insufficient_scope`; write cannot delete all."""
    reader = bearer(signed(settings, scope="todos:read"))
    response = await client.post("/todos", json={"title": "t"}, headers=reader)
    assert_problem(response, 403)
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    response = await client.delete("/todos", headers=write_headers(settings))
    body = assert_problem(response, 403)
    assert f"This requires the scope {ADMIN}." == body["detail"]


async def test_reads_need_no_token(client: httpx.AsyncClient, settings: Settings) -> None:
    """GET is public (Todo-Backend clients read without credentials)."""
    token = issue_token(settings, [WRITE])
    created = await client.post("/todos", json={"title": "t"}, headers=bearer(token))
    assert 200 == (await client.get(created.json()["url"])).status_code
    assert 200 == (await client.get("/todos")).status_code


async def test_auth_none_lets_anyone_write_and_warns_at_startup(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """TODO_AUTH=none: writes need no token, and the startup logs a WARNING saying so."""
    caplog.set_level(logging.WARNING, logger="todo")
    app = create_app(dataclasses.replace(settings, auth="none"))
    async with app.router.lifespan_context(app):
        warnings = [
            r
            for r in caplog.records
            if r.levelno == logging.WARNING and "TODO_AUTH=none" in r.getMessage()
        ]
        assert 1 == len(warnings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            created = await client.post("/todos", json={"title": "open"})
            assert 201 == created.status_code
            assert 204 == (await client.delete("/todos")).status_code
