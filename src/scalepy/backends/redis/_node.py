"""One Redis server: a lazily opened multiplexed connection, reopened after a failure."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from scalepy.backends.redis._pipeline import fail_batches
from scalepy.backends.redis._resp import open_connection
from scalepy.errors import BackendError, BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.backends.redis._resp import Endpoint, RespConnection

__all__ = ("Node",)


class Node:
    """Sends batches to one server, connecting on first use and after every loss.

    Batches dispatched while the connection opens wait in a buffer and leave as
    soon as it is open; if it cannot be opened they fail with the connect error.
    Only one connection attempt runs at a time. Once closed, a node opens nothing
    more: a connection an attempt brings after that is closed at once.
    """

    __slots__ = (
        "_backend",
        "_buffer",
        "_closed",
        "_connecting",
        "_connection",
        "_redirect",
        "endpoint",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        backend: str,
        redirect: Callable[[bytes, asyncio.Future[Any], str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._backend = backend
        self._redirect = redirect
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._buffer: list[tuple[list[bytes], list[asyncio.Future[Any]]]] = []
        self._closed = False

    def dispatch(self, wires: list[bytes], futures: list[asyncio.Future[Any]]) -> None:
        """Write the batch now if connected, else once connected."""
        connection = self._connection
        if connection is not None and connection.is_open:
            connection.send(wires, futures)
            return
        self._buffer.append((wires, futures))
        if self._closed:
            self._fail_buffer(BackendUnavailable("the connection is closed", backend=self._backend))
            return
        if self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def waiting(self) -> int:
        """Commands sent on this node's connection and not yet answered."""
        return 0 if self._connection is None else self._connection.waiting

    def abort_stalled(self, silent_since: float) -> None:
        """Drop the connection if it owes replies and was silent after `silent_since`."""
        connection = self._connection
        if connection is not None and connection.silent_since(silent_since):
            connection.abort()

    async def aclose(self, grace: float) -> None:
        """Wait up to `grace` seconds for unanswered replies, then close the connection."""
        if self._connecting is not None:
            await asyncio.wait([self._connecting], timeout=grace)
        self._closed = True  # an attempt still running after the grace ends in vain
        if self._connection is not None:
            await self._connection.drain_and_close(grace)

    async def _connect(self) -> None:
        try:
            connection = await open_connection(
                self.endpoint, backend=self._backend, redirect=self._redirect
            )
        except BackendError as exc:
            self._fail_buffer(exc)
            return
        finally:
            self._connecting = None
        if self._closed:  # closed while connecting: nothing else would close this one
            connection.abort()
            self._fail_buffer(BackendUnavailable("the connection is closed", backend=self._backend))
            return
        self._connection = connection
        buffer, self._buffer = self._buffer, []
        for wires, futures in buffer:
            live = [(w, f) for w, f in zip(wires, futures, strict=True) if not f.done()]
            if live:
                connection.send([w for w, _ in live], [f for _, f in live])

    def _fail_buffer(self, exc: BackendError) -> None:
        buffer, self._buffer = self._buffer, []
        fail_batches(buffer, exc)
