"""`Subscription`: one pub/sub channel that stays subscribed by itself.

It rides the client's own connection to the server: the connection speaks RESP3,
so the server pushes the channel's messages between command replies (see
`_pubsub.py`), and a process holds one connection per server, subscriptions
included. A server that refuses RESP3 gets a second connection for subscriptions.

Every loss is seen, reported (`connected` turns False, `on_disconnected` runs) and
repaired by one reconnect loop with a growing, jittered delay: the connection
lost (its commands fail the same moment), the server ending the subscription
(`sunsubscribe` when a cluster slot moves), or a refusal (`MOVED`). A watchdog
PINGs a connection that has shown no sign of life for `ping_interval`, so a server
that hangs (or a network that drops packets silently) is noticed within
`ping_interval` plus the client's timeout instead of never; commands in flight
notice it by their own deadlines (see `_pipeline.py`).

On Redis Cluster a `sharded` subscription uses SSUBSCRIBE on the node that owns the
channel's slot (found in the client's slot map, corrected by the node's MOVED
reply), and publishers use SPUBLISH: a message travels to one shard's subscribers
instead of being broadcast over the cluster bus to every node. A classic
subscription (SUBSCRIBE; PUBLISH reaches it from any node) stays available for
publishers that cannot use SPUBLISH, such as a Lua script whose keys live in
another slot; it is made on the node of the channel's slot too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalepy._lifecycle import AsyncCloseable
from scalepy._loop import cancel_and_wait, started_here
from scalepy._validation import check_finite
from scalepy.backends.redis._command import encode_command
from scalepy.backends.redis._resp import ignore_outcome
from scalepy.errors import BackendCommandError, BackendError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.backends.redis._client import RedisClient
    from scalepy.backends.redis._resp import RespConnection

__all__ = ("Subscription", "SubscriptionStatistics")

_logger = logging.getLogger("scalepy.backends.redis")
_JITTER = 0.2  # +-20 %: replicas that lost Redis together do not reconnect in lockstep
_PING = encode_command(("PING",))


class _Lost(Exception):
    """The subscription was not confirmed in time, or its connection stopped answering."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionStatistics:
    """A snapshot of a `Subscription`'s activity."""

    channel: str
    """The channel."""
    sharded: bool
    """Whether it uses SSUBSCRIBE (sharded pub/sub) rather than SUBSCRIBE."""
    connected: bool
    """Whether it is subscribed right now."""
    connects: int
    """Successful subscriptions, the first one included."""
    failures: int
    """Connections lost, and attempts to subscribe that failed."""
    messages: int
    """Messages handed to `on_message`."""


class Subscription(AsyncCloseable):
    """One pub/sub channel on a `RedisClient`, resubscribed by itself after any failure.

    `start()` runs a background task that subscribes and hands each message's data
    to `on_message`, in order. When the connection fails, `connected` turns False
    and `on_disconnected` runs; the task then retries after `min_delay` seconds,
    doubling the delay (with jitter) up to `max_delay`, and runs `on_connected` each
    time it is subscribed again. Messages published while it was not subscribed are
    lost: that is what `on_connected` is for (resynchronise). Nothing raises into
    the caller; an exception from a callback is logged and the subscription goes on.

    Callbacks run in the event loop and must not block.

    Args:
        client: The Redis (or Redis Cluster) client whose connection carries the
            subscription; its timeouts bound subscribing and the watchdog's PING.
        channel: The channel name.
        on_message: Called with each message's data.
        on_connected: Called each time the channel is subscribed (first time included).
        on_disconnected: Called each time a subscribed connection is lost.
        sharded: Use sharded pub/sub (SSUBSCRIBE; publishers must SPUBLISH). Needs
            Redis >= 7.0; on a cluster the subscription is made on the node that
            owns the channel's slot.
        min_delay: Seconds before the first reconnect attempt; > 0.
        max_delay: Longest delay between two attempts, in seconds; >= `min_delay`.
        ping_interval: Seconds without any sign of life on the connection (a
            message, a reply) after which it is checked with a PING; a PING
            unanswered within the client's timeout counts as a lost connection
            (the connection is dropped, for its commands too); > 0.

    Raises:
        ConfigurationError: An option holds a value that is not allowed.

    Example:
        ```python
        async with Subscription(client, "events", on_message=print) as events:
            await events.start()
            await client.execute("PUBLISH", "events", "hello")  # printed: b'hello'
        ```
    """

    __slots__ = (
        "_channel",
        "_channel_name",
        "_client",
        "_connected",
        "_connects",
        "_failures",
        "_max_delay",
        "_messages",
        "_min_delay",
        "_on_connected",
        "_on_disconnected",
        "_on_message",
        "_ping_interval",
        "_redirect",
        "_sharded",
        "_subscribed",
        "_task",
    )

    def __init__(
        self,
        client: RedisClient,
        channel: str,
        on_message: Callable[[bytes], None],
        *,
        on_connected: Callable[[], None] | None = None,
        on_disconnected: Callable[[], None] | None = None,
        sharded: bool = False,
        min_delay: float = 0.1,
        max_delay: float = 10.0,
        ping_interval: float = 5.0,
    ) -> None:
        if not channel:
            raise ConfigurationError("a Subscription needs a non-empty channel name")
        check_finite("min_delay", min_delay)
        check_finite("max_delay", max_delay, minimum=min_delay, inclusive=True)
        check_finite("ping_interval", ping_interval)
        self._client = client
        self._channel = channel
        self._channel_name = channel.encode()
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._sharded = sharded
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._ping_interval = ping_interval
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._connected = False
        self._redirect: str | None = None  # a cluster node's MOVED reply
        self._connects = self._failures = self._messages = 0

    @property
    def channel(self) -> str:
        """The channel name."""
        return self._channel

    @property
    def connected(self) -> bool:
        """Whether the channel is subscribed right now."""
        return self._connected

    def start_soon(self) -> None:
        """Start the background task in the running event loop, if it is not running.

        A task started in an earlier event loop does not count: it ended with that
        loop, so a new one starts in this loop.

        Raises:
            RuntimeError: No event loop is running in this thread.
        """
        if not started_here(self._task):
            self._subscribed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"scalepy.redis.subscription:{self._channel}"
            )

    async def start(self) -> None:
        """Start the background task and wait until subscribed, for a bounded time.

        The wait lasts at most the client's connect timeout plus its command
        timeout; if Redis cannot be reached by then, this returns anyway and the
        task keeps trying (see `connected`).
        """
        self.start_soon()
        config = self._client.config
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config.connect_timeout + config.timeout):
                await self._subscribed.wait()

    async def aclose(self) -> None:
        """Unsubscribe and stop the background task; `start()` may start it again.

        Does not close the client.
        """
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)  # a task of an earlier event loop is not awaited
        self._connected = False  # closed on purpose: not a loss, so no on_disconnected
        self._subscribed.clear()

    def statistics(self) -> SubscriptionStatistics:
        """Return a snapshot of the subscription's counters."""
        return SubscriptionStatistics(
            channel=self._channel,
            sharded=self._sharded,
            connected=self._connected,
            connects=self._connects,
            failures=self._failures,
            messages=self._messages,
        )

    def __repr__(self) -> str:
        state = "connected" if self._connected else "running" if self._task else "stopped"
        kind = "sharded " if self._sharded else ""
        return (
            f"<Subscription {kind}{self._channel!r} {state} connects={self._connects} "
            f"failures={self._failures} messages={self._messages}>"
        )

    # -- the background task ---------------------------------------------------

    def _running(self) -> bool:
        # Checked by the loops as well as cancelled: a cancellation that a driver
        # swallows mid-read must not keep a closed subscription alive, nor one whose
        # event loop is shutting down (its runner cancels every task and waits).
        task = self._task
        return task is not None and not task.cancelling() and task is asyncio.current_task()

    async def _run(self) -> None:
        delay = self._min_delay
        while self._running():
            try:
                await self._session()
            except (BackendError, TimeoutError, _Lost) as exc:
                self._failures += 1
                if isinstance(exc, BackendCommandError) and exc.message.startswith("MOVED "):
                    self._redirect = exc.message  # the slot map was stale: go where told
                level = logging.WARNING if self._connected else logging.DEBUG
                _logger.log(level, "subscription to %r lost, resubscribing: %r", self._channel, exc)
            except Exception:  # a bug must not end the subscription for good
                self._failures += 1
                _logger.exception("subscription to %r failed unexpectedly", self._channel)
            if not self._running():
                return
            if self._connected:
                delay = self._min_delay  # it was up: start the backoff over
                self._set_connected(False)
            await asyncio.sleep(delay * random.uniform(1 - _JITTER, 1 + _JITTER))
            delay = min(delay * 2, self._max_delay)

    async def _session(self) -> None:
        """Subscribe once and deliver messages until the subscription ends.

        Raises:
            BackendError: Connecting failed, the server refused or ended the
                subscription, or the connection was lost.
            TimeoutError: No confirmation within the client's timeouts.
            _Lost: The connection stopped answering the watchdog's PING.
        """
        config = self._client.config
        session = _Session(self, asyncio.get_running_loop())
        async with asyncio.timeout(config.connect_timeout + config.timeout):
            connection = await self._client._subscriber(self._channel_name, redirect=self._redirect)
        channels = connection.channels
        channels.subscribe(self._channel_name, sharded=self._sharded, listener=session)
        try:
            # Confirmed (on_connected has run), or ended: whichever comes first.
            done, _ = await asyncio.wait(
                (session.confirmed, session.ended),
                timeout=config.timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                raise TimeoutError(f"no confirmation within {config.timeout} s")
            self._redirect = None
            await self._watch(connection, session)
        finally:  # cancelled included: unsubscribing writes at once, without waiting
            channels.unsubscribe(self._channel_name, sharded=self._sharded, listener=session)

    async def _watch(self, connection: RespConnection, session: _Session) -> None:
        """Wait for the subscription to end, PINGing the connection when it falls quiet."""
        loop = asyncio.get_running_loop()
        timeout = self._client.config.timeout
        interval = self._ping_interval
        while True:
            if session.ended.done():
                raise session.ended.result()
            await asyncio.wait((session.ended,), timeout=interval)
            quiet = connection.quiet_since(loop.time() - interval)
            if session.ended.done() or not quiet or not connection.is_open:
                continue  # ended, or it showed life lately, or its loss is on its way
            pinged = loop.time()
            pong: asyncio.Future[Any] = loop.create_future()
            pong.add_done_callback(ignore_outcome)
            connection.send([_PING], [pong])
            await asyncio.wait((session.ended, pong), timeout=timeout)
            if not pong.done() and not session.ended.done() and connection.quiet_since(pinged):
                connection.abort()  # dead or frozen: its commands reconnect too
                raise _Lost(f"no reply to PING within {timeout} s")

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if connected:
            if self._connects:
                _logger.info("subscription to %r restored", self._channel)
            self._connects += 1
            self._subscribed.set()
            callback = self._on_connected
        else:
            self._subscribed.clear()
            callback = self._on_disconnected
        if callback is not None:
            self._call(callback)

    def _deliver(self, data: bytes) -> None:
        self._messages += 1
        self._call(self._on_message, data)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            _logger.exception("a callback of the subscription to %r failed", self._channel)


class _Session:
    """One subscription attempt, as its connection tells it (see `_pubsub.Listener`)."""

    __slots__ = ("confirmed", "ended", "owner")

    def __init__(self, owner: Subscription, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.confirmed: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[BackendError] = loop.create_future()

    def subscribed(self) -> None:
        """Confirmed: the owner is connected before the first message is delivered."""
        if not self.confirmed.done() and not self.ended.done():
            self.confirmed.set_result(None)
            self.owner._set_connected(True)

    def deliver(self, data: bytes) -> None:
        """Hand a message to the owner."""
        if not self.ended.done():
            self.owner._deliver(data)

    def lost(self, error: BackendError) -> None:
        """The subscription ended; the owner's task raises `error`."""
        if not self.ended.done():
            self.ended.set_result(error)
