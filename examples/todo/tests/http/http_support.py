"""A real uvicorn for the tests of todo.http whose behaviour depends on the server."""

from __future__ import annotations

import asyncio
import socket
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import ASGIApp

__all__ = ("uvicorn_serving",)


@asynccontextmanager
async def uvicorn_serving(app: ASGIApp) -> AsyncIterator[int]:
    """Serve `app` with uvicorn (h11) on a free local port; yield the port.

    The socket listens before uvicorn starts, so a connection made at once waits in
    the backlog instead of racing the start-up.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    config = uvicorn.Config(
        app, http="h11", ws="none", lifespan="off", log_level="warning", log_config=None
    )  # no logging set-up of its own: its records reach pytest's caplog
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        listener.close()
