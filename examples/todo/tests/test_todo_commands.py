"""`python -m todo`: the token and migrate commands, and bad settings as a clear exit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
from tests.support.redis_server import free_port

from todo.__main__ import main
from todo.auth import ADMIN, AUDIENCE, WRITE
from todo.settings import DEV_JWT_SECRET

if TYPE_CHECKING:
    import pytest


def scopes(token: str) -> str:
    """The scope claim of a token signed with the development secret."""
    claims = jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    return str(claims["scope"])


def test_token_prints_a_token_with_the_scopes_asked_for(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`token --scope ... --ttl S` signs with TODO_JWT_SECRET; `todos:write` by default."""
    monkeypatch.delenv("TODO_JWT_SECRET", raising=False)
    assert 0 == main(["token", "--scope", WRITE, "--scope", ADMIN, "--ttl", "60"])
    claims = jwt.decode(
        capsys.readouterr().out.strip(), DEV_JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE
    )
    assert f"{ADMIN} {WRITE}" == claims["scope"]
    assert 60 == claims["exp"] - claims["iat"]
    assert 0 == main(["token"])
    token = capsys.readouterr().out.strip()
    assert (
        WRITE == jwt.decode(token, DEV_JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)["scope"]
    )


def test_bad_settings_exit_with_2_and_name_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TODO_ENV=prod without a secret of its own: no token, exit status 2, one line."""
    monkeypatch.setenv("TODO_ENV", "prod")
    monkeypatch.delenv("TODO_JWT_SECRET", raising=False)
    assert 2 == main(["token"])
    assert capsys.readouterr().err.startswith("todo: TODO_JWT_SECRET is the development secret")


def test_migrate_without_a_database_server_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL unreachable: a line naming the (masked) URL and the cause, no traceback."""
    port = free_port()
    monkeypatch.setenv("TODO_DATABASE_URL", f"postgresql://app:secret@127.0.0.1:{port}/todo")
    assert 1 == main(["migrate"])
    err = capsys.readouterr().err
    assert err.startswith(f"todo: cannot migrate postgresql://app:***@127.0.0.1:{port}/todo: ")
    assert "secret" not in err
    assert 1 == len(err.splitlines())
