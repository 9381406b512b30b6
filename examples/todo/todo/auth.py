"""Who may write: JWT bearer tokens (HS256, pyjwt) carrying OAuth-style scopes.

Reads are public, as in the Todo-Backend contract. Creating, changing or deleting a
todo needs a token with the scope `todos:write`; deleting every todo needs
`todos:admin`. A missing, malformed, badly signed or expired token is answered
`401` with `WWW-Authenticate: Bearer` (RFC 6750); a valid token without the scope
`403`. With `TODO_AUTH=none` every write is allowed (the app logs a warning at
startup): for local demos and Todo-Backend clients, which send no token.
`python -m todo token --scope todos:write` prints a token signed with the
configured secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt

from todo.http import Problem

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.requests import Request

    from todo.settings import Settings

__all__ = ("ADMIN", "AUDIENCE", "ISSUER", "WRITE", "Principal", "authorize", "issue_token")

WRITE = "todos:write"
"""Scope needed to create, change or delete one todo."""
ADMIN = "todos:admin"
"""Scope needed to delete every todo."""
ISSUER = "todo"
AUDIENCE = "todo-api"
_ALGORITHM = "HS256"
_LEEWAY = 5.0  # seconds of clock skew tolerated between the token's issuer and us


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent the request."""

    subject: str
    """The token's `sub`, or `anonymous` with `TODO_AUTH=none`."""
    scopes: frozenset[str]
    """The scopes granted."""


def issue_token(
    settings: Settings, scopes: Iterable[str], *, ttl: float = 3600.0, subject: str = "cli"
) -> str:
    """A signed token granting `scopes` for `ttl` seconds."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(sorted(set(scopes))),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + int(ttl),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=_ALGORITHM)


# --8<-- [start:authorize]
def authorize(request: Request, settings: Settings, scope: str) -> Principal:
    """The request's principal, if it holds `scope`.

    Raises:
        Problem: 401 without a valid bearer token, 403 without the scope.
    """
    if settings.auth == "none":
        return Principal("anonymous", frozenset((WRITE, ADMIN)))
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("A bearer token is required to change todos.", error=None)
    try:
        claims = jwt.decode(
            token.strip(),
            settings.jwt_secret,
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=_LEEWAY,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorized("The token has expired.", error="invalid_token") from None
    except jwt.InvalidTokenError:
        raise _unauthorized("The token is invalid.", error="invalid_token") from None
    granted = frozenset(str(claims.get("scope", "")).split())
    if scope not in granted:
        raise Problem(
            403,
            f"This requires the scope {scope}.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
        )
    return Principal(str(claims["sub"]), granted)


# --8<-- [end:authorize]


def _unauthorized(detail: str, *, error: str | None) -> Problem:
    challenge = 'Bearer realm="todo"' + (f', error="{error}"' if error else "")
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})
