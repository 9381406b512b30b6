"""Running an ASGI application's lifespan in-process, as a server does around its requests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    # scalepy's own ASGI type aliases (ASGI is a convention; scalepy exports no types for it).
    from scalepy._asgi import ASGIApp, Message

__all__ = ("run_lifespan",)


async def run_lifespan(
    app: ASGIApp, *, while_serving: Callable[[], Awaitable[object]] | None = None
) -> list[str]:
    """Send `app` the lifespan startup, then the shutdown; return the types of its answers.

    Args:
        app: Any ASGI application (Starlette, FastAPI, raw ASGI).
        while_serving: Awaited once the app reported its startup complete, before the
            shutdown is sent: where a test makes its requests.

    Returns:
        The `type` of each message the app sent, e.g. `lifespan.startup.complete`.
    """
    incoming: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete" and while_serving is not None:
            await while_serving()

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent
