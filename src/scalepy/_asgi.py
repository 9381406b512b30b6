"""ASGI callable types and the problem answer shared by scalepy's ASGI pieces (stdlib only)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, TypeAlias

__all__ = ("PROBLEM_TYPE", "ASGIApp", "Message", "Receive", "Scope", "Send", "send_problem")

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBLEM_TYPE = "about:blank"
"""The problem `type` of scalepy's refusals: the status code says it all (RFC 9457 §4.2.1)."""


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    **extensions: int,
) -> None:
    """Answer `status` with an RFC 9457 `application/problem+json` body.

    Args:
        send: The ASGI `send` of the request being answered.
        status: The HTTP status.
        title: The problem's title, the status phrase.
        detail: What happened, for a human.
        headers: Extra response headers, e.g. `Retry-After`.
        **extensions: Extra members of the body, e.g. `retry_after=3`.
    """
    problem = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    body = json.dumps({**problem, **extensions}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
