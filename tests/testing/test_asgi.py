"""scalepy.testing.asgi_request drives an ASGI app in-process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest

from scalepy.testing import asgi_request

Message = MutableMapping[str, Any]


async def echo(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Answer with the method, client and body, then report the next receive()."""
    body = (await receive())["body"]
    after = (await receive())["type"]
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"x-dup", b"1"), (b"x-dup", b"2"), (b"x-after", after.encode())],
        }
    )
    await send(
        {"type": "http.response.body", "body": scope["method"].encode() + b" ", "more_body": True}
    )
    await send({"type": "http.response.body", "body": scope["client"][0].encode() + b" " + body})


async def test_a_request_reaches_the_app_and_the_answer_is_collected() -> None:
    """Method, peer and body go in; status, headers and the joined body come out."""
    response = await asgi_request(echo, "/x", method="POST", peer="192.0.2.9", body=b"hi")
    assert (201, b"POST 192.0.2.9 hi") == (response.status, response.body)
    assert "http.disconnect" == response.header("x-after")
    assert None is response.header("x-missing")
    with pytest.raises(AssertionError, match="sent 2 times"):
        response.header("x-dup")
