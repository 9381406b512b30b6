"""`InvalidationBus`: tells every process's L1 what to drop, and whether it can trust it.

Each process's bus subscribes to one channel (sharded pub/sub on Redis Cluster, so
the channel lives on one shard) and publishes a heartbeat every `heartbeat`
seconds. A bus is *healthy* while it is subscribed and the last of its **own**
heartbeats that came back was sent less than `2 * heartbeat` seconds ago.

Why its own: Redis delivers one channel's messages to a subscriber in the order
it executed the PUBLISHes. When a heartbeat sent at `s` comes back, every
invalidation Redis executed before `s` has already been delivered and applied.
So while healthy at time `t`, the only invalidations a process may not have seen
are those executed after `t - 2 * heartbeat`: no process serves a value from L1
more than `staleness_bound = 2 * heartbeat` seconds after the `publish()` that
invalidated it returned. The echo measures the whole path (publish, server,
delivery, this event loop), so a lagging subscriber cannot look healthy on
others' heartbeats alone. The cache bypasses L1 while the bus is unhealthy.

Messages are lost only when the subscription is lost: a subscriber that is merely
slow (a busy event loop, a paused server) gets every message later, in order, so
once its own echo is back its L1 is exact again and is kept. After a
resubscription, though, whatever was published in between is gone: the first
time the bus is healthy after each (re)subscription, the first one included, it
calls `on_reset` and the cache drops its whole L1.

Wire format (version 1), a compact JSON array:

* heartbeat: `[1, origin, "h", sent]` (`sent` on the origin's monotonic clock)
* invalidation: `[1, origin, "i", clear, [keys...], [tags...]]`

A message this version cannot read might have been an invalidation, so it is
delivered as `Invalidation(clear=True)`; heartbeats of any version are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from scalepy._lifecycle import AsyncCloseable
from scalepy._loop import cancel_and_wait, started_here
from scalepy._validation import check_finite
from scalepy.cache._metrics import BUS_MESSAGES, BUS_RESETS, MESSAGE_KIND
from scalepy.errors import BackendError
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.backends.redis import RedisClient
    from scalepy.telemetry import Instrumentation

__all__ = ("Heartbeat", "Invalidation", "InvalidationBus")

_VERSION = 1
_HEARTBEAT = "h"
_INVALIDATION = "i"
_KINDS = {kind: {MESSAGE_KIND: kind} for kind in ("heartbeat", "invalidation", "unreadable")}


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What one process tells the others to drop from their L1."""

    keys: tuple[str, ...] = ()
    """Full storage keys whose L1 copies must go."""
    tags: tuple[str, ...] = ()
    """Tags whose version changed: entries carrying them must go."""
    clear: bool = False
    """Drop the whole L1 (a namespace clear, a version bump, an unreadable message)."""
    origin: str = ""
    """The id of the bus that published it."""


def encode_heartbeat(origin: str, sent: float) -> bytes:
    """Return the wire form of a heartbeat sent at `sent` (the origin's clock)."""
    return json.dumps([_VERSION, origin, _HEARTBEAT, sent], separators=(",", ":")).encode()


def encode_invalidation(origin: str, invalidation: Invalidation) -> bytes:
    """Return the wire form of `invalidation`, published by `origin`."""
    body = [
        _VERSION,
        origin,
        _INVALIDATION,
        int(invalidation.clear),
        list(invalidation.keys),
        list(invalidation.tags),
    ]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class Heartbeat(NamedTuple):
    """A heartbeat as read from the channel."""

    origin: str
    """The id of the bus that sent it."""
    sent: float
    """When it was sent, on the origin's monotonic clock."""


def decode(payload: bytes) -> Invalidation | Heartbeat | None:
    """Read one message.

    Returns:
        The `Invalidation` or `Heartbeat`; `None` for a heartbeat this version
        cannot read (ignored). Any other unreadable message gives
        `Invalidation(clear=True)`, as it may have been an invalidation.
    """
    try:
        message: Any = json.loads(payload)
    except ValueError:
        message = None
    if not isinstance(message, list) or len(message) < 3:
        return Invalidation(clear=True)
    version, origin, kind, *rest = message
    if kind == _HEARTBEAT:
        if version == _VERSION and isinstance(origin, str) and _number(rest[:1]):
            return Heartbeat(origin, float(rest[0]))
        return None
    if (
        version == _VERSION
        and kind == _INVALIDATION
        and isinstance(origin, str)
        and len(rest) == 3
        and _strings(rest[1])
        and _strings(rest[2])
    ):
        return Invalidation(tuple(rest[1]), tuple(rest[2]), bool(rest[0]), origin)
    return Invalidation(clear=True)


def _number(values: list[Any]) -> bool:
    return bool(values) and isinstance(values[0], float | int) and not isinstance(values[0], bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


class InvalidationBus(AsyncCloseable):
    """Publishes L1 invalidations to every process and delivers theirs; see the module doc.

    Args:
        client: The Redis connection; on a cluster the channel is sharded
            (SSUBSCRIBE/SPUBLISH, Redis >= 7.0).
        channel: The channel, e.g. `scalepy:cache:todo:{bus}`.
        on_invalidation: Called with each invalidation another process published
            (this bus's own are not delivered back).
        on_reset: Called once the bus is healthy after each (re)subscription, the
            first one included: messages published while it was not subscribed are
            lost, so the receiver drops its whole L1.
        heartbeat: Seconds between two heartbeats; > 0. The bus is unhealthy when
            its own heartbeat has not come back for `2 * heartbeat` seconds.
        instrumentation: Where metrics go; the process default when `None`.

    Raises:
        ConfigurationError: `heartbeat` is not a finite number > 0.
    """

    __slots__ = (
        "_client",
        "_healthy",
        "_heartbeat",
        "_last_echo",
        "_messages",
        "_on_invalidation",
        "_on_reset",
        "_origin",
        "_publish_command",
        "_resets",
        "_resubscribed",
        "_subscription",
        "_task",
        "_wake",
    )

    def __init__(
        self,
        client: RedisClient,
        channel: str,
        *,
        on_invalidation: Callable[[Invalidation], None],
        on_reset: Callable[[], None],
        heartbeat: float = 0.5,
        instrumentation: Instrumentation | None = None,
    ) -> None:
        check_finite("heartbeat", heartbeat)
        from scalepy.backends.redis import Subscription

        self._client = client
        self._heartbeat = heartbeat
        self._on_invalidation = on_invalidation
        self._on_reset = on_reset
        self._origin = uuid.uuid4().hex
        sharded = client.is_cluster  # one shard carries the channel; no cluster-bus broadcast
        self._publish_command = "SPUBLISH" if sharded else "PUBLISH"
        self._subscription = Subscription(
            client,
            channel,
            self._receive,
            on_connected=self._connected,
            on_disconnected=self._disconnected,
            sharded=sharded,
            max_delay=max(heartbeat, 5.0),
            ping_interval=2 * heartbeat,
        )
        self._last_echo = -math.inf  # send time of the newest own heartbeat seen back
        self._resubscribed = False  # subscribed again, and on_reset not called since
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._healthy = asyncio.Event()  # set when an echo makes the bus healthy
        instrumentation = instrumentation or get_default()
        self._messages = instrumentation.metric(BUS_MESSAGES)
        self._resets = instrumentation.metric(BUS_RESETS)

    @property
    def origin(self) -> str:
        """This bus's id, carried by what it publishes; its own messages are not delivered."""
        return self._origin

    @property
    def channel(self) -> str:
        """The channel."""
        return self._subscription.channel

    @property
    def heartbeat(self) -> float:
        """Seconds between two heartbeats."""
        return self._heartbeat

    @property
    def staleness_bound(self) -> float:
        """Worst-case seconds another process may serve an invalidated L1 value.

        Counted from the moment the `publish()` of the invalidation returned: `2 *
        heartbeat`. A process that cannot confirm it has seen everything published
        until that long ago reports itself unhealthy, and its cache bypasses L1.
        """
        return 2 * self._heartbeat

    @property
    def subscribed(self) -> bool:
        """Whether the channel is subscribed right now (healthy needs an echo as well)."""
        return self._subscription.connected

    @property
    def healthy(self) -> bool:
        """Whether L1 may be served: subscribed, and an own heartbeat came back in time."""
        return self._subscription.connected and (
            time.monotonic() - self._last_echo <= 2 * self._heartbeat
        )

    async def start(self) -> None:
        """Subscribe and start the heartbeats; return once healthy, or after a bounded wait.

        The wait lasts at most the client's connect timeout plus its command
        timeout plus one heartbeat; the bus keeps trying in the background.
        """
        if not started_here(self._task):  # never started, or in an earlier event loop
            self._wake = asyncio.Event()
            self._healthy = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._beat_forever(), name=f"scalepy.cache.bus.heartbeat:{self.channel}"
            )
        config = self._client.config
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(config.connect_timeout + config.timeout + self._heartbeat):
                await self._subscription.start()
                await self._healthy.wait()  # the first echo, a round trip away

    async def publish(self, invalidation: Invalidation) -> None:
        """Send an invalidation to every other process's bus.

        Args:
            invalidation: What to drop; its `origin` is replaced by this bus's id.
                One with no key, no tag and no `clear` is not sent.

        Raises:
            BackendError: Redis failed or did not answer within the client's timeout;
                other processes may keep serving the old value until their bus
                turns unhealthy or the entry expires, so the caller decides.
        """
        if invalidation.keys or invalidation.tags or invalidation.clear:
            payload = encode_invalidation(self._origin, invalidation)
            await self._client.execute(self._publish_command, self.channel, payload)

    async def aclose(self) -> None:
        """Stop the heartbeats and unsubscribe; the bus is unhealthy from now on."""
        task, self._task = self._task, None
        await cancel_and_wait(task)  # a task of an earlier event loop is not awaited
        await self._subscription.aclose()
        self._last_echo = -math.inf

    def __repr__(self) -> str:
        healthy = "healthy" if self._task is not None and self.healthy else "unhealthy"
        return f"<InvalidationBus {self.channel!r} {healthy} origin={self._origin}>"

    # -- heartbeats ------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while True:
            self._wake.clear()
            sent = time.monotonic()
            with contextlib.suppress(BackendError):  # the missing echo tells the story
                payload = encode_heartbeat(self._origin, sent)
                await self._client.execute(self._publish_command, self.channel, payload)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(sent + self._heartbeat - time.monotonic()):
                    await self._wake.wait()

    def _connected(self) -> None:
        self._resubscribed = True
        self._wake.set()  # beat now: the echo makes the bus healthy again

    def _disconnected(self) -> None:
        self._last_echo = -math.inf  # messages may be lost: wait for a fresh echo
        self._healthy.clear()

    def _receive(self, payload: bytes) -> None:
        message = decode(payload)
        if isinstance(message, Invalidation):
            kind = "invalidation" if message.origin else "unreadable"
            self._messages.record(1, _KINDS[kind])
            if message.origin != self._origin:
                self._on_invalidation(message)
        elif message is not None:
            self._messages.record(1, _KINDS["heartbeat"])
            if message.origin == self._origin and message.sent > self._last_echo:
                self._last_echo = message.sent
                if self.healthy:
                    self._healthy.set()
                    if self._resubscribed:
                        self._resubscribed = False
                        self._resets.record(1)
                        self._on_reset()
