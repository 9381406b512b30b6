"""One Redis server: a lazily opened multiplexed connection, reopened after a failure."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from scalepy.backends.redis._pipeline import fail_batches
from scalepy.backends.redis._resp import open_connection
from scalepy.errors import BackendError, BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.backends.redis._resp import Endpoint, RespConnection

__all__ = ("Node",)

_logger = logging.getLogger("scalepy.backends.redis")


class Node:
    """Sends batches to one server, connecting on first use and after every loss.

    Batches dispatched while the connection opens wait in a buffer and leave as
    soon as it is open; if it cannot be opened they fail with the connect error.
    Only one connection attempt runs at a time. Once closed, a node opens nothing
    more: a connection an attempt brings after that is closed at once.

    Subscriptions share the connection with commands (RESP3). A server that
    refused RESP3 gets a second node, a `subscriber` one, for them (see `subscriber`).

    Args:
        endpoint: The server.
        backend: The server's masked URL, carried by errors.
        redirect: See `RespConnection`.
        subscriber: A node for subscriptions only, over RESP2.
    """

    __slots__ = (
        "_backend",
        "_buffer",
        "_closed",
        "_companion",
        "_connecting",
        "_connection",
        "_failure",
        "_redirect",
        "_subscriber",
        "endpoint",
    )

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        backend: str,
        redirect: Callable[[bytes, asyncio.Future[Any], str], None] | None = None,
        subscriber: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._backend = backend
        self._redirect = redirect
        self._subscriber = subscriber
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._failure: BackendError | None = None  # why the last attempt failed
        self._buffer: list[tuple[list[bytes], list[asyncio.Future[Any]]]] = []
        self._closed = False
        self._companion: Node | None = None  # the subscriber node, on a RESP2 server

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
        self._connect_soon()

    async def open(self) -> RespConnection:
        """Return the open connection, connecting first if there is none.

        Raises:
            BackendTimeout: Connecting took longer than the connect timeout.
            BackendUnavailable: The server cannot be reached, or the node is closed.
            BackendCommandError: The server rejected the login.
        """
        connection = self._connection
        if connection is not None and connection.is_open:
            return connection
        if self._closed:
            raise BackendUnavailable("the connection is closed", backend=self._backend)
        # Shielded: a caller giving up must not cancel an attempt others wait for.
        await asyncio.shield(self._connect_soon())
        connection = self._connection
        if connection is not None and connection.is_open:
            return connection
        failure = self._failure or BackendUnavailable("connection lost", backend=self._backend)
        raise type(failure)(failure.message, backend=failure.backend)

    async def subscriber(self, channel: bytes, *, redirect: str | None) -> RespConnection:
        """Return the open connection that carries this server's subscriptions.

        One server carries every channel: `channel` and `redirect` (see
        `ClusterRouter.subscriber`) do not matter here.

        The command connection, unless the server refused RESP3: then a connection
        of their own, the only way RESP2 allows (said once, at INFO level).

        Raises:
            BackendTimeout: Connecting took longer than the connect timeout.
            BackendUnavailable: The server cannot be reached, or the node is closed.
            BackendCommandError: The server rejected the login.
        """
        connection = await self.open()
        if connection.resp3:
            return connection
        if self._companion is None:
            _logger.info(
                "%s refused RESP3 (HELLO 3): its subscriptions use a connection of their own",
                self._backend,
            )
            self._companion = Node(self.endpoint, backend=self._backend, subscriber=True)
        return await self._companion.open()  # its own subscriber() is never asked

    def idle(self) -> bool:
        """Whether the connection is open and owes no reply (an open one buffers nothing)."""
        connection = self._connection
        return connection is not None and not connection.waiting and connection.is_open

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
        if self._companion is not None:
            await self._companion.aclose(grace)
        if self._connection is not None:
            await self._connection.drain_and_close(grace)

    def _connect_soon(self) -> asyncio.Task[None]:
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.get_running_loop().create_task(self._connect())
        return connecting

    async def _connect(self) -> None:
        try:
            connection = await open_connection(
                self.endpoint,
                backend=self._backend,
                redirect=self._redirect,
                subscriber=self._subscriber,
            )
        except BackendError as exc:
            self._failure = exc
            self._fail_buffer(exc)
            return
        finally:
            self._connecting = None
        self._failure = None
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
