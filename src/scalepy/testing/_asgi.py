"""`asgi_request`: drive an ASGI app in-process, without an HTTP client library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy._asgi import ASGIApp, Message

__all__ = ("AsgiResponse", "asgi_request")


@dataclass(frozen=True, slots=True)
class AsgiResponse:
    """What an ASGI app sent back for one request."""

    status: int
    """The status code of `http.response.start`."""
    headers: list[tuple[str, str]]
    """Response headers in order, names as sent (lower case by ASGI convention)."""
    body: bytes
    """The body, all `http.response.body` messages joined."""

    def header(self, name: str) -> str | None:
        """Return the value of the only `name` header, or `None` when absent.

        Raises:
            AssertionError: The header was sent more than once.
        """
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"header {name!r} sent {len(values)} times"
        return values[0] if values else None


async def asgi_request(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    peer: str = "127.0.0.1",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> AsgiResponse:
    """Send one HTTP request through `app` as an ASGI server would, and collect the answer.

    Args:
        app: Any ASGI application (Starlette, FastAPI, or raw ASGI).
        path: The request path.
        method: The HTTP method.
        peer: The client address the app sees in `scope["client"]`.
        headers: Request headers as `(name, value)` pairs.
        body: The request body, sent in one message.

    Returns:
        The status, headers and body the app sent.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
        "client": (peer, 50000),
        "server": ("testserver", 80),
    }
    requests: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return requests.pop() if requests else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    return AsgiResponse(
        status=start["status"],
        headers=[(name.decode(), value.decode()) for name, value in start.get("headers", [])],
        body=b"".join(message.get("body", b"") for message in bodies),
    )
