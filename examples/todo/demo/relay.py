"""A TCP relay in front of PostgreSQL that the tour can cut, as a network partition would.

The demo's replicas and worker reach PostgreSQL through it. `cut()` resets every relayed
connection and resets new ones at once, so the service sees PostgreSQL fail fast (its
breaker opens) while the machine's PostgreSQL keeps serving everyone else; `restore()`
lets connections through again.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ("Relay",)

_CHUNK = 65536


class Relay:
    """Accept on 127.0.0.1 (a free port) and pipe each connection to `host:port`."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._open = True
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def listen_port(self) -> int:
        """The port the relay accepts on (after `start()`)."""
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def is_open(self) -> bool:
        """Whether connections get through."""
        return self._open

    async def start(self) -> None:
        """Start accepting on a port the kernel picks."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def cut(self) -> int:
        """Reset every relayed connection and every new one; return how many were open."""
        self._open = False
        links = list(self._links)
        for link in links:
            for end in link:
                end.transport.abort()
        return len(links)

    def restore(self) -> None:
        """Let new connections through again."""
        self._open = True

    async def aclose(self) -> None:
        """Stop accepting and close every relayed connection."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        link = (writer, upstream_writer)
        self._links.add(link)
        pipes = (
            asyncio.create_task(_pipe(reader, upstream_writer)),
            asyncio.create_task(_pipe(upstream_reader, writer)),
        )
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            self._links.discard(link)
            for end in link:
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either end closes; then close the other end too."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
