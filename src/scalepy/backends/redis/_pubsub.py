"""Pub/sub on a command connection: who listens to which channel, and what the server pushed.

Over RESP3 a subscribed connection keeps running commands: the server's pub/sub
frames arrive as pushes (`>`), between replies, and never take a reply's place.
`RespConnection` hands each push here. `Channels` keeps one server subscription
per channel however many listeners share it (subscribing the first, unsubscribing
after the last), and tells the listeners:

* `subscribed()` when the server confirmed the subscription (at once for a listener
  joining a confirmed channel), before any message of it;
* `deliver(data)` for each message, in order;
* `lost(error)` when the subscription ended without them asking: the server
  refused it (`MOVED` on a cluster), ended it (`sunsubscribe` when a slot moves),
  or the connection was lost. The listener is then forgotten.

A (S)SUBSCRIBE or (S)UNSUBSCRIBE is confirmed by a push, not by a reply, but a
refusal is an error reply. So each waits in the connection's reply queue like any
command, marked in `confirming`: its push confirms it when it is the oldest
command owed (Redis answers in order), and an error reply refuses it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from scalepy.backends.redis._command import encode_command
from scalepy.errors import BackendError, BackendUnavailable

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

__all__ = ("CONFIRMATIONS", "Channels", "Listener")

# The kind of a subscription's messages, by sharded or not.
_MESSAGE = {False: b"message", True: b"smessage"}
# Pushes that confirm a request, with the kind of message they are about.
CONFIRMATIONS: dict[bytes, bytes] = {
    b"subscribe": b"message",
    b"ssubscribe": b"smessage",
    b"unsubscribe": b"message",
    b"sunsubscribe": b"smessage",
}
_SUBSCRIBE = {False: "SUBSCRIBE", True: "SSUBSCRIBE"}
_UNSUBSCRIBE = {False: "UNSUBSCRIBE", True: "SUNSUBSCRIBE"}

Key = tuple[bytes, bytes]  # (message kind, channel)


class Listener(Protocol):
    """What a subscriber is told; called from the connection's `data_received`."""

    def subscribed(self) -> None:
        """The server confirmed the subscription; messages follow."""

    def deliver(self, data: bytes) -> None:
        """A message arrived."""

    def lost(self, error: BackendError) -> None:
        """The subscription ended: refused, ended by the server, or its connection lost."""


class Channels:
    """The subscriptions carried by one connection; see the module docstring.

    Args:
        send: Writes one command and returns the future its reply settles, in reply
            order; `None` when the connection is closing (nothing was written).
        backend: The server's masked URL, carried by errors.
    """

    __slots__ = ("_backend", "_confirmed", "_listeners", "_send", "confirming")

    def __init__(self, send: Callable[[bytes], asyncio.Future[Any] | None], backend: str) -> None:
        self._send = send
        self._backend = backend
        self._listeners: dict[Key, list[Listener]] = {}
        self._confirmed: set[Key] = set()
        # (confirmation push kind, channel, its future), oldest first.
        self.confirming: deque[tuple[bytes, bytes, asyncio.Future[Any]]] = deque()

    def subscribe(self, channel: bytes, *, sharded: bool, listener: Listener) -> None:
        """Add `listener` to `channel`, subscribing on the server if it is the first."""
        key = (_MESSAGE[sharded], channel)
        listeners = self._listeners.get(key)
        if listeners is not None:
            listeners.append(listener)
            if key in self._confirmed:
                listener.subscribed()
            return
        self._listeners[key] = [listener]
        self._request(_SUBSCRIBE[sharded], channel)

    def unsubscribe(self, channel: bytes, *, sharded: bool, listener: Listener) -> None:
        """Remove `listener`, unsubscribing on the server after the last one."""
        key = (_MESSAGE[sharded], channel)
        listeners = self._listeners.get(key)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[key]
            self._confirmed.discard(key)
            self._request(_UNSUBSCRIBE[sharded], channel)

    def confirm(self, push: list[Any]) -> bool:
        """Take a confirmation push for the oldest request; False if it is not one."""
        confirming = self.confirming
        if not confirming:
            return False
        kind, channel, future = confirming[0]
        if kind != push[0] or channel != push[1]:
            return False
        confirming.popleft()
        if not future.done():
            future.set_result(None)
        key = (CONFIRMATIONS[kind], channel)
        listeners = self._listeners.get(key)
        if listeners is not None and kind in (b"subscribe", b"ssubscribe"):
            self._confirmed.add(key)
            for listener in list(listeners):
                listener.subscribed()
        return True

    def refuse(self, future: asyncio.Future[Any], error: BackendError) -> bool:
        """Take an error reply meant for a request; False if `future` is not the oldest's."""
        confirming = self.confirming
        if not confirming or confirming[0][2] is not future:
            return False
        kind, channel, _ = confirming.popleft()
        if not future.done():
            future.set_result(None)
        if kind in (b"subscribe", b"ssubscribe"):
            self._end((CONFIRMATIONS[kind], channel), error)
        return True

    def push(self, push: list[Any]) -> None:
        """Deliver a message push, or end a subscription the server ended by itself."""
        kind = push[0]
        if kind in (b"message", b"smessage"):
            for listener in self._listeners.get((kind, push[1]), ()):
                listener.deliver(push[2])
        elif kind in (b"unsubscribe", b"sunsubscribe"):
            reason = f"the server ended the subscription ({kind.decode()})"
            ended = BackendUnavailable(reason, backend=self._backend)
            self._end((CONFIRMATIONS[kind], push[1]), ended)

    def lose_all(self, reason: str) -> None:
        """The connection is gone: every listener has lost its subscription."""
        self.confirming.clear()
        listeners, self._listeners = self._listeners, {}
        self._confirmed.clear()
        for group in listeners.values():
            for listener in group:
                listener.lost(BackendUnavailable(reason, backend=self._backend))

    def _end(self, key: Key, error: BackendError) -> None:
        self._confirmed.discard(key)
        for listener in self._listeners.pop(key, ()):
            listener.lost(type(error)(error.message, backend=error.backend))

    def _request(self, command: str, channel: bytes) -> None:
        future = self._send(encode_command((command, channel)))
        if future is not None:
            self.confirming.append((command.lower().encode(), channel, future))
