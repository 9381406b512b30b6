"""`Subscription`: one pub/sub channel that stays subscribed by itself.

Built on redis-py's `PubSub`, over a connection pool of its own whose connections
never retry: redis-py would otherwise reconnect and resubscribe silently inside a
read, hiding the gap in which messages were lost. Here every loss is seen, reported
(`connected` turns False, `on_disconnected` runs) and repaired by one reconnect loop
with a growing, jittered delay. A watchdog PINGs an idle connection, so a server
that hangs (or a network that drops packets silently) is noticed within
`ping_interval` plus the client's timeout instead of never.

On Redis Cluster a `sharded` subscription uses SSUBSCRIBE on the node that owns the
channel's slot (found in redis-py's slot map, corrected by the node's MOVED reply),
and publishers use SPUBLISH: a message travels to one shard's subscribers instead of
being broadcast over the cluster bus to every node. A classic subscription
(SUBSCRIBE; PUBLISH reaches it from any node) stays available for publishers that
cannot use SPUBLISH, such as a Lua script whose keys live in another slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import MovedError, RedisClusterException, RedisError

from scalepy._lifecycle import AsyncCloseable
from scalepy._loop import cancel_and_wait, started_here
from scalepy._validation import check_finite
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio.client import PubSub

    from scalepy.backends.redis._client import RedisClient

__all__ = ("Subscription", "SubscriptionStatistics")

_logger = logging.getLogger("scalepy.backends.redis")
_JITTER = 0.2  # +-20 %: replicas that lost Redis together do not reconnect in lockstep


class _Lost(Exception):
    """The server ended the subscription, or stopped answering the watchdog's PING."""


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
        client: The Redis (or Redis Cluster) connection; its `redis` client provides
            the connection settings.
        channel: The channel name.
        on_message: Called with each message's data.
        on_connected: Called each time the channel is subscribed (first time included).
        on_disconnected: Called each time a subscribed connection is lost.
        sharded: Use sharded pub/sub (SSUBSCRIBE; publishers must SPUBLISH). Needs
            Redis >= 7.0; on a cluster the subscription connects to the node that
            owns the channel's slot.
        min_delay: Seconds before the first reconnect attempt; > 0.
        max_delay: Longest delay between two attempts, in seconds; >= `min_delay`.
        ping_interval: Seconds without any message after which the connection is
            checked with a PING; a PING unanswered within the client's timeout
            counts as a lost connection; > 0.

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
        self._redirect: tuple[str, int] | None = None  # a cluster node's MOVED reply
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
            except (RedisError, RedisClusterException, OSError, TimeoutError, _Lost) as exc:
                self._failures += 1
                if isinstance(exc, MovedError):  # the slot map was stale: go where told
                    self._redirect = (exc.host, int(exc.port))
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
        """Subscribe once and deliver messages until the connection fails."""
        pool = await self._connection_pool()
        redis: Redis = Redis(connection_pool=pool)
        try:
            # Closing is local (no round trip), so it cannot hang on a frozen server.
            async with contextlib.aclosing(redis.pubsub()) as pubsub:
                config = self._client.config
                async with asyncio.timeout(config.connect_timeout + config.timeout):
                    await self._subscribe(pubsub)
                self._redirect = None
                self._set_connected(True)
                await self._listen(pubsub)
        finally:
            await redis.aclose()
            await pool.aclose()

    async def _connection_pool(self) -> ConnectionPool:
        """A pool for the server to subscribe on, whose connections never retry."""
        client = self._client.redis
        connection_class: type[Any]
        if isinstance(client, Redis):
            connection_class = client.connection_pool.connection_class
            settings = dict(client.connection_pool.connection_kwargs)
        else:  # a cluster: the node owning the channel's slot (any node hears a PUBLISH)
            await client.initialize()
            node = client.get_node_from_key(self._channel)
            if node is None:
                raise _Lost("no cluster node serves the channel's slot")
            connection_class = node.connection_class
            settings = dict(node.connection_kwargs)
            if self._redirect is not None:
                settings["host"], settings["port"] = self._redirect
        settings["retry"] = Retry(NoBackoff(), 0)
        return ConnectionPool(connection_class=connection_class, max_connections=1, **settings)

    async def _subscribe(self, pubsub: PubSub) -> None:
        if self._sharded:
            await pubsub.ssubscribe(self._channel)
        else:
            await pubsub.subscribe(self._channel)
        while True:  # the server's confirmation: from now on, every publish reaches us
            message = await pubsub.get_message(timeout=self._client.config.timeout)
            if message is not None and message["type"] in ("subscribe", "ssubscribe"):
                return

    async def _listen(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        timeout = self._client.config.timeout
        poll = min(self._ping_interval, timeout)
        heard = loop.time()
        pinged: float | None = None
        while self._running():
            message = await pubsub.get_message(timeout=poll)
            now = loop.time()
            if message is not None:
                heard, pinged = now, None
                kind = message["type"]
                if kind in ("message", "smessage"):
                    self._messages += 1
                    self._call(self._on_message, message["data"])
                elif kind in ("unsubscribe", "sunsubscribe"):  # e.g. the slot moved
                    raise _Lost(f"the server ended the subscription ({kind})")
            elif pinged is not None:
                if now - pinged >= timeout:
                    raise _Lost(f"no reply to PING within {timeout} s")
            elif now - heard >= self._ping_interval:
                await pubsub.ping()
                pinged = now

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

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            _logger.exception("a callback of the subscription to %r failed", self._channel)
