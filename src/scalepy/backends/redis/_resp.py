"""One multiplexed RESP3 connection: many pipelines in flight, replies settle futures in order.

Writes never wait for earlier replies (Redis answers in order), so one connection
carries every pipeline a process sends to one server, as ioredis and redis-rs do.
Replies are parsed by hiredis straight from `data_received`: no reader task, no
extra event-loop hop between the socket and the caller.

The connection logs in with `HELLO 3`, so the same connection also carries the
process's pub/sub subscriptions: the server pushes their messages (`>` frames)
between replies, and `Channels` (see `_pubsub.py`) hands them to the subscribers,
while replies keep their order and their RESP2 shapes (see `_resp3.py`). A server
that refuses `HELLO 3` (older than Redis 6, or with HELLO renamed) gets a RESP2
connection, and subscriptions then take a connection of their own (see `_node.py`).

A connection tells a dead server from a busy one by its last sign of life: reply
bytes arriving, a write backlog draining (a large value on its way to the server),
or going from idle to busy. A caller that gives up leaves its reply to be read and
discarded in turn, so the connection stays in step and nobody else is disturbed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import hiredis

from scalepy.backends.redis._command import encode_command
from scalepy.backends.redis._errors import reply_error
from scalepy.backends.redis._pubsub import CONFIRMATIONS, Channels
from scalepy.backends.redis._resp3 import PLAIN, as_resp2
from scalepy.errors import BackendCommandError, BackendTimeout, BackendUnavailable

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable, Sequence

    from scalepy.backends.redis._command import Command

__all__ = ("Endpoint", "RespConnection", "ignore_outcome", "open_connection")

# While a write backlog waits in the transport, how often to look whether it drains.
_DRAIN_CHECK = 0.01
_PUSH = hiredis.PushNotification
# What a RESP2 connection in subscribed mode sends besides replies to PING.
_RESP2_PUSHES = frozenset({*CONFIRMATIONS, b"message", b"smessage"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where one Redis server listens and how to log in to it."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_socket_path: str | None = None
    ssl_context: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    client_name: str | None = None
    connect_timeout: float = 2.0

    def hello(self) -> Command:
        """`HELLO 3`, with the login and the client name: the RESP3 handshake."""
        command: list[str | int] = ["HELLO", 3]
        if self.password is not None:
            command += ["AUTH", self.username or "default", self.password]
        if self.client_name:
            command += ["SETNAME", self.client_name]
        return tuple(command)

    def handshake(self) -> list[Command]:
        """The RESP2 handshake: AUTH, SELECT, CLIENT SETNAME."""
        commands: list[Command] = []
        if self.password is not None:
            user = () if self.username is None else (self.username,)
            commands.append(("AUTH", *user, self.password))
        if self.db:
            commands.append(("SELECT", self.db))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        return commands


class RespConnection(asyncio.Protocol):
    """An open connection; `send` writes a batch, replies settle its futures.

    Args:
        backend: The server's masked URL, carried by errors.
        redirect: Called with the encoded command instead of failing its future when
            the reply is a cluster `MOVED`/`ASK` redirection (cluster mode only).
        subscriber: A RESP2 connection for subscriptions only (see `_node.py`):
            its pub/sub arrays are taken as pushes.
    """

    def __init__(
        self,
        backend: str,
        redirect: Callable[[bytes, asyncio.Future[Any], str], None] | None = None,
        *,
        subscriber: bool = False,
    ) -> None:
        self._backend = backend
        self._redirect = redirect
        self._subscriber = subscriber
        self.resp3 = not subscriber  # until the server refuses HELLO 3
        self.channels = Channels(self._send_one, backend)
        self._reader = hiredis.Reader()
        self._waiting: deque[tuple[bytes, asyncio.Future[Any]]] = deque()
        self._transport: asyncio.Transport | None = None
        self._lost = False
        self._loop = asyncio.get_running_loop()
        self._alive_at = self._loop.time()  # the last sign of life, in loop time
        self._written = 0  # bytes handed to the transport, ever
        self._drain_check: asyncio.TimerHandle | None = None  # armed while writing is paused
        self._sent = 0  # bytes the transport had passed on at the last drain check

    @property
    def is_open(self) -> bool:
        """Whether the connection can take commands."""
        transport = self._transport
        return transport is not None and not self._lost and not transport.is_closing()

    @property
    def waiting(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._waiting)

    def silent_since(self, moment: float) -> bool:
        """Whether replies are owed and no sign of life came after loop time `moment`."""
        return bool(self._waiting) and self._alive_at <= moment

    def send(self, wires: Sequence[bytes], futures: Sequence[asyncio.Future[Any]]) -> None:
        """Write encoded commands at once; their replies will settle `futures`, in order.

        Nothing here can fail half-way: every command was encoded before (see
        `encode_command`), so each written command has its future waiting, in order.
        """
        assert self._transport is not None
        if self._lost:  # nothing will answer: fail now, not at each caller's timeout
            self._fail(futures, "connection closed")
            return
        waiting = self._waiting
        if not waiting:  # idle until now: silence counts from here
            self._alive_at = self._loop.time()
        waiting.extend(zip(wires, futures, strict=True))
        data = b"".join(wires)
        self._written += len(data)
        self._transport.write(data)

    def quiet_since(self, moment: float) -> bool:
        """Whether no sign of life came after loop time `moment`."""
        return self._alive_at <= moment

    def abort(self) -> None:
        """Drop the connection now; unanswered commands fail with `BackendUnavailable`."""
        if self._transport is not None:
            self._transport.abort()

    async def drain_and_close(self, grace: float) -> None:
        """Wait up to `grace` seconds for the last unanswered reply, then close.

        Replies still owed then are given up: the connection is dropped, failing their
        callers at once, and what is left of its writes is never sent.
        """
        if self._waiting:
            await asyncio.wait([self._waiting[-1][1]], timeout=grace)
        if self._transport is None:
            return
        if self._waiting:  # still owed after the grace: close() would wait for a reader
            self._transport.abort()
        else:
            self._transport.close()

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always a subclass of asyncio.Transport:
        # uvloop's (which uvicorn picks when it is installed) is not.
        self._transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self._alive_at = self._loop.time()
        self._reader.feed(data)
        waiting = self._waiting
        while (reply := self._reader.gets()) is not False:
            kind = type(reply)
            if kind is _PUSH or (
                self._subscriber and kind is list and reply and reply[0] in _RESP2_PUSHES
            ):
                self._push(reply)
                continue
            wire, future = waiting.popleft()
            if isinstance(reply, hiredis.ReplyError):
                self._error(wire, future, str(reply))
            elif not future.done():
                # Only a RESP3 type needs converting; an array's items are checked
                # here, without a call per reply (the interpreter's fastest path).
                if kind is list:
                    for item in reply:
                        if type(item) not in PLAIN and self.resp3:
                            reply = as_resp2(reply, wire)
                            break
                elif kind is not bytes and kind is not int and reply is not None and self.resp3:
                    reply = as_resp2(reply, wire)
                future.set_result(reply)

    def pause_writing(self) -> None:
        # A backlog the server reads slowly (a large value) is progress, not a stall:
        # watch it drain until the transport asks for more again.
        self._sent = self._written - self._backlog()
        self._drain_check = self._loop.call_later(_DRAIN_CHECK, self._check_drain)

    def resume_writing(self) -> None:
        self._alive_at = self._loop.time()
        self._stop_drain_check()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_drain_check()
        reason = f"connection lost: {exc}" if exc else "connection closed"
        futures = [future for _, future in self._waiting]
        self._waiting.clear()
        self._fail(futures, reason)
        self.channels.lose_all(reason)

    def _fail(self, futures: Iterable[asyncio.Future[Any]], reason: str) -> None:
        for future in futures:
            if not future.done():
                future.set_exception(BackendUnavailable(reason, backend=self._backend))

    def _push(self, push: list[Any]) -> None:
        channels = self.channels
        # A confirmation is the reply owed for the oldest command, which it must be.
        if (
            push[0] in CONFIRMATIONS
            and channels.confirming
            and self._waiting
            and self._waiting[0][1] is channels.confirming[0][2]
            and channels.confirm(push)
        ):
            self._waiting.popleft()
            return
        channels.push(push)

    def _error(self, wire: bytes, future: asyncio.Future[Any], message: str) -> None:
        error = reply_error(message, self._backend)
        if self.channels.confirming and self.channels.refuse(future, error):
            return
        if self._redirect is not None and message.startswith(("MOVED ", "ASK ")):
            self._redirect(wire, future, message)
        elif not future.done():
            future.set_exception(error)

    def _send_one(self, wire: bytes) -> asyncio.Future[Any] | None:
        """Write a (S)(UN)SUBSCRIBE for `Channels`; its outcome is theirs to read."""
        if not self.is_open:
            return None
        future: asyncio.Future[Any] = self._loop.create_future()
        future.add_done_callback(ignore_outcome)
        self.send([wire], [future])
        return future

    def _backlog(self) -> int:
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    def _check_drain(self) -> None:
        sent = self._written - self._backlog()
        if sent > self._sent:
            self._sent = sent
            self._alive_at = self._loop.time()
        self._drain_check = self._loop.call_later(_DRAIN_CHECK, self._check_drain)

    def _stop_drain_check(self) -> None:
        if self._drain_check is not None:
            self._drain_check.cancel()
            self._drain_check = None


async def open_connection(
    endpoint: Endpoint,
    *,
    backend: str,
    redirect: Callable[[bytes, asyncio.Future[Any], str], None] | None = None,
    subscriber: bool = False,
) -> RespConnection:
    """Connect to `endpoint` and log in, all within its connect timeout.

    The login asks for RESP3 (`HELLO 3`), and logs in over RESP2 if the server
    refuses it (see `RespConnection.resp3`); a `subscriber` connection (see
    `RespConnection`) asks for RESP2 at once.

    Raises:
        BackendTimeout: Connecting or logging in took longer than the timeout.
        BackendUnavailable: The server refused or dropped the connection.
        BackendCommandError: The server rejected the login (wrong password, bad db).
    """

    def factory() -> RespConnection:
        return RespConnection(backend, redirect, subscriber=subscriber)

    connection: RespConnection | None = None
    try:
        async with asyncio.timeout(endpoint.connect_timeout):
            connection = await _connect(endpoint, factory)
            try:
                await _log_in(connection, endpoint)
            except BackendUnavailable:
                # Accepted, then dropped during the login: the server went away (a
                # restart). Whoever joined this attempt since deserves its successor.
                connection = await _connect(endpoint, factory)
                await _log_in(connection, endpoint)
    except TimeoutError:
        if connection is not None:
            connection.abort()
        raise BackendTimeout(
            f"could not connect within {endpoint.connect_timeout} s", backend=backend
        ) from None
    except OSError as exc:
        raise BackendUnavailable(f"could not connect: {exc}", backend=backend) from exc
    except BaseException:
        if connection is not None:
            connection.abort()
        raise
    return connection


async def _connect(endpoint: Endpoint, factory: Callable[[], RespConnection]) -> RespConnection:
    loop = asyncio.get_running_loop()
    if endpoint.unix_socket_path is not None:
        _, connection = await loop.create_unix_connection(factory, endpoint.unix_socket_path)
    else:
        _, connection = await loop.create_connection(
            factory, endpoint.host, endpoint.port, ssl=endpoint.ssl_context
        )
    return connection


async def _log_in(connection: RespConnection, endpoint: Endpoint) -> None:
    if connection.resp3:
        select = [("SELECT", endpoint.db)] if endpoint.db else []
        hello, *selected = await _run(connection, [endpoint.hello(), *select])
        if not isinstance(hello, BaseException):
            for reply in selected:
                if isinstance(reply, BaseException):
                    raise reply
            return
        if not (isinstance(hello, BackendCommandError) and _refuses_resp3(hello)):
            raise hello  # a lost connection too: never logged in
        connection.resp3 = False
    for reply in await _run(connection, endpoint.handshake()):
        if isinstance(reply, BaseException):
            raise reply


async def _run(connection: RespConnection, commands: list[Command]) -> list[Any]:
    """Send `commands` at once; their replies, errors included."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in commands]
    connection.send([encode_command(command) for command in commands], futures)
    return await asyncio.gather(*futures, return_exceptions=True)


def _refuses_resp3(error: BackendCommandError) -> bool:
    """Whether a HELLO 3 error says the server speaks RESP2 only (not: bad password)."""
    message = error.message
    return message.startswith("NOPROTO") or "unknown command" in message.lower()


def ignore_outcome(future: asyncio.Future[Any]) -> None:
    """A done-callback for a reply nobody reads; reading it keeps asyncio from logging it."""
    if not future.cancelled():
        future.exception()
