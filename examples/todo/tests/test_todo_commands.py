"""`python -m todo`: the token and migrate commands, and bad settings as a clear exit."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt

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
