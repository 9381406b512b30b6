"""ASGI callable types and the problem answer shared by scalepy's ASGI pieces (stdlib only)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeAlias

__all__ = (
    "PROBLEM_JSON",
    "PROBLEM_TYPE",
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "problem_body",
    "send_problem",
)

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBLEM_TYPE = "about:blank"
"""The problem `type` of scalepy's refusals: the status code says it all (RFC 9457 §4.2.1)."""

PROBLEM_JSON = "application/problem+json"
"""The media type of the problem bodies."""


def problem_body(status: int, title: str, detail: str, **extensions: int) -> bytes:
    """An RFC 9457 body: `type`, `title`, `status`, `detail`, then `extensions`.

    One place for it, so the ASGI middleware and the framework integrations answer
    the same bytes.
    """
    problem = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    return json.dumps({**problem, **extensions}, separators=(",", ":")).encode()


async def send_problem(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `status` with an `application/problem+json` body (see `problem_body`).

    Args:
        send: The ASGI `send` of the request being answered.
        status: The HTTP status.
        body: The problem body.
        headers: Extra response headers, e.g. `Retry-After`.
    """
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
