"""`RedisSharedState`: breakers of one name in several replicas trip together.

Nothing here runs on the hot path. Each replica keeps deciding with its own
`BreakerCore`; a background task syncs it every `flush_interval` seconds (and at
once after a local trip or half-open result) with one Lua script,
`lua/shared_state.lua`, which atomically:

1. stores the replica's current window counts (a snapshot, not a delta: a sync
   retried after a timeout never counts twice, and a replica that stops syncing
   stops counting after `stale_after`);
2. sums the fresh windows of every replica and, if the shared record is CLOSED
   and the sum crosses the thresholds (after `minimum_calls`), opens it;
3. applies a half-open trial's result (close, or reopen with a grown wait) as a
   compare-and-set on the record's epoch: a stale epoch is refused;
4. publishes every transition, so subscribed replicas adopt it within
   milliseconds instead of at their next sync.

The reply carries the record; a replica adopts a newer epoch's state through
`BreakerCore.transition_to` without echoing it back. While Redis is down or
slow, syncs fail quietly (counted, logged once per outage) behind a
`BackendGuard` and every replica keeps its local breaker; sharing resumes by
itself when Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, NamedTuple, Protocol

from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource, deprecated
from scalepy._loop import cancel_and_wait, started_here
from scalepy._validation import check_finite
from scalepy.backends._resolve import check_namespace, require_client
from scalepy.backends.guard import BackendGuard
from scalepy.backends.keys import KeySpace
from scalepy.breaker._state import BreakerState
from scalepy.errors import BackendError, ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.typing import EncodableT

    from scalepy.backends import BackendConfig
    from scalepy.backends.redis import RedisClient, Script, Subscription
    from scalepy.breaker._events import StateChange
    from scalepy.breaker._state import BreakerCore

__all__ = ("RedisSharedState", "SharedState", "SharedStateStatistics")

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_SHARED_STATES = {0: _CLOSED, 1: _OPEN}
_logger = logging.getLogger("scalepy.breaker")


class SharedState(Protocol):
    """What a `CircuitBreaker` needs from a shared state given as `shared=`."""

    def attach(
        self, name: str, core: BreakerCore, now: Callable[[], float]
    ) -> Callable[[StateChange], object]:
        """Bind to one breaker; return the listener the breaker calls on every transition."""
        ...

    async def aclose(self) -> None:
        """Stop sharing; the breaker keeps working locally."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedStateStatistics:
    """A snapshot of a shared state's activity, for health checks and dashboards."""

    name: str | None
    """The breaker it is attached to; `None` before `attach`."""
    epoch: int
    """The shared record's epoch last seen; -1 before the first sync."""
    shared_state: BreakerState | None
    """The shared record's state last seen (CLOSED or OPEN); `None` before the first sync."""
    syncs: int
    """Syncs that reached Redis."""
    failed_syncs: int
    """Syncs that failed or timed out (the breaker decided locally meanwhile)."""
    adopted: int
    """Remote transitions that changed this replica's state."""
    notifications: int
    """Transition notifications received over pub/sub."""
    available: bool
    """Whether the last sync reached Redis."""


class SyncReply(NamedTuple):
    """The shared record after a sync, and the aggregate window the script judged."""

    state: BreakerState
    """CLOSED or OPEN."""
    epoch: int
    """Incremented on every shared transition."""
    elapsed: float
    """Seconds since the record last entered OPEN, on Redis' clock."""
    open_wait: float
    """Seconds the shared OPEN lasts."""
    calls: int
    """Calls in the aggregate window (0 if none was judged)."""
    failures: int
    """Failed calls in it."""
    slow_calls: int
    """Slow calls in it."""


@cache
def _script() -> Script:
    """The sync script, `lua/shared_state.lua`, read on first use."""
    from scalepy.backends.redis import ScriptRegistry

    return ScriptRegistry("scalepy.breaker")["shared_state"]


def _ms(seconds: float) -> int:
    return math.ceil(seconds * 1000)


async def run_sync(
    client: RedisClient,
    keys: tuple[str, str],
    args: list[EncodableT],
) -> SyncReply:
    """Run the sync script once (the argument layout is documented in the script).

    Args:
        client: The Redis connection.
        keys: The shared record and the windows hash, sharing one hash tag.
        args: `ARGV`, as `RedisSharedState.sync` builds it.

    Returns:
        The parsed reply.

    Raises:
        BackendError: Redis failed or did not answer within the client's timeout.
    """
    reply: list[int] = await client.run_script(_script(), keys, args)
    state, epoch, elapsed, wait, calls, failures, slow = reply
    return SyncReply(
        _SHARED_STATES[state], epoch, elapsed / 1000, wait / 1000, calls, failures, slow
    )


class RedisSharedState(AsyncResource):
    """Shares one circuit breaker's state with the breakers of the same name elsewhere.

    Give it to a breaker as `CircuitBreaker(name, ..., shared=RedisSharedState(url))`.
    The hot path never touches Redis. Every replica's window is flushed every
    `flush_interval` seconds; when the sum of the windows crosses the breaker's
    thresholds, the shared state opens and every replica opens with it (within
    milliseconds over pub/sub, at most one `flush_interval` later otherwise).
    Half-open trial results close or reopen the fleet. Only CLOSED and OPEN are
    shared: HALF_OPEN follows from the shared wait, and `force_open()`,
    `disable()` and `reset()` stay local. All replicas of a name should use the
    same thresholds.

    It starts its background tasks when attached inside a running event loop,
    on the breaker's first transition, or on `await start()`; call `start()` at
    startup when the breaker is created before the loop runs. `aclose()` (or
    the breaker's `aclose()`) stops them.

    Args:
        client: A `RedisClient` (shared with other primitives), or a Redis URL or
            config (the state then owns its client).
        namespace: Separates applications sharing one Redis; non-empty, no braces.
        flush_interval: Seconds between two syncs; > 0.
        stale_after: Seconds after which a replica's flushed window stops counting;
            `3 * flush_interval` if `None`.
        max_backoff: Longest pause, in seconds, between two attempts while Redis is
            down (the pause starts at `flush_interval` and doubles).
        owns_client: Close a given `RedisClient` in `aclose()`; a client built from
            a URL is always closed.

    Raises:
        ConfigurationError: An option holds a value that is not allowed, or the
            backend is `memory://`.

    Example:
        ```python
        shared = RedisSharedState("redis://localhost:6379/0", flush_interval=1.0)
        breaker = CircuitBreaker("postgres", minimum_calls=20, shared=shared)
        await shared.open()  # at startup; `await breaker.aclose()` at shutdown
        ```
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_adopted",
        "_adopting",
        "_available",
        "_channel",
        "_client",
        "_core",
        "_epoch",
        "_failed_syncs",
        "_flush_interval",
        "_guard",
        "_keys",
        "_loop",
        "_max_backoff",
        "_name",
        "_namespace",
        "_notifications",
        "_now",
        "_owns_client",
        "_proposal",
        "_replica",
        "_shared_state",
        "_stale_after",
        "_subscription",
        "_syncs",
        "_task",
        "_wake",
    )

    def __init__(
        self,
        client: RedisClient | str | BackendConfig,
        *,
        namespace: str = "default",
        flush_interval: float = 1.0,
        stale_after: float | None = None,
        max_backoff: float = 10.0,
        owns_client: bool = False,
    ) -> None:
        check_finite("flush_interval", flush_interval)
        check_finite("max_backoff", max_backoff)
        stale_after = 3 * flush_interval if stale_after is None else stale_after
        if not (math.isfinite(stale_after) and stale_after > flush_interval):
            raise ConfigurationError(
                f"stale_after must be a finite number > flush_interval ({flush_interval!r}), "
                f"got {stale_after!r}"
            )
        check_namespace(namespace)
        self._client, self._owns_client = require_client(
            client, user="RedisSharedState", owns_client=owns_client, instrumentation=None
        )
        self._namespace = KeySpace(f"scalepy:cb:{namespace}")
        self._flush_interval = flush_interval
        self._stale_after = stale_after
        self._max_backoff = max(max_backoff, flush_interval)
        self._guard = BackendGuard(
            failure_threshold=1, initial_delay=flush_interval, max_delay=self._max_backoff
        )
        self._replica = uuid.uuid4().hex
        self._name: str | None = None
        self._core: BreakerCore | None = None
        self._now: Callable[[], float] | None = None
        self._keys = ("", "")
        self._channel = ""
        self._epoch = -1
        self._shared_state: BreakerState | None = None
        self._proposal: tuple[BreakerState, int] | None = None  # (result, core generation)
        self._adopting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._wake = asyncio.Event()
        self._syncs = self._failed_syncs = self._adopted = self._notifications = 0
        self._available = False

    # -- lifecycle -------------------------------------------------------------

    def attach(
        self, name: str, core: BreakerCore, now: Callable[[], float]
    ) -> Callable[[StateChange], object]:
        """Bind to one breaker (done by `CircuitBreaker(shared=...)`).

        Args:
            name: The breaker's name: replicas with the same name and namespace share.
            core: The breaker's state machine.
            now: The breaker's clock.

        Returns:
            The listener the breaker calls after each of its transitions.

        Raises:
            ConfigurationError: It is already attached to a breaker.
        """
        if self._core is not None:
            raise ConfigurationError(
                f"this RedisSharedState already serves breaker {self._name!r}; "
                f"give each breaker its own"
            )
        self._name, self._core, self._now = name, core, now
        state_key, windows_key = self._namespace.keys(name, "state", "windows")
        self._keys = (state_key, windows_key)
        self._channel = self._namespace.key(name, "events")
        from scalepy.backends.redis import Subscription

        # Classic pub/sub, also on a cluster: the sync script PUBLISHes from the node
        # that owns the breaker's keys, and the cluster broadcasts it to every node.
        self._subscription = Subscription(
            self._client,
            self._channel,
            self.notify,
            on_connected=self._on_subscribed,
            min_delay=self._flush_interval,
            max_delay=self._max_backoff,
        )
        self._start_in_running_loop()
        return self._on_change

    async def open(self) -> None:
        """Start the sync and the notification tasks in the running loop, if not yet running.

        Raises:
            ConfigurationError: Not attached to a breaker yet.
            ResourceClosedError: The state was closed; it does not reopen.
        """
        await self._open_once(self._open)

    async def start(self) -> None:
        """Deprecated alias of `open()`."""
        deprecated("RedisSharedState.start()", "RedisSharedState.open()")
        await self.open()

    async def _open(self) -> None:
        if self._core is None:
            raise ConfigurationError("attach the RedisSharedState to a CircuitBreaker first")
        self._start_in_running_loop()

    def _start_in_running_loop(self) -> None:
        if started_here(self._task):  # a task of an earlier event loop ended with it
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # created outside a loop: started later, by a transition or start()
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(
            self._sync_forever(), name=f"scalepy.breaker.sync:{self._name}"
        )
        assert self._subscription is not None  # created by attach(), like the core
        self._subscription.start_soon()

    async def _aclose(self) -> None:
        """Stop the background tasks, and close the client if this state owns it."""
        task, self._task, self._loop = self._task, None, None
        await cancel_and_wait(task)  # a task of an earlier event loop is not awaited
        if self._subscription is not None:
            await self._subscription.aclose()
        if self._owns_client:
            await self._client.aclose()

    # -- sync ------------------------------------------------------------------

    async def sync(self) -> SyncReply:
        """Flush this replica's window and adopt the shared state: one round trip.

        The background task calls it every `flush_interval`; call it directly to
        sync at once. Failures are counted in `statistics()` and logged once per
        outage.

        Returns:
            The shared record after the sync and the aggregate window judged.

        Raises:
            ConfigurationError: Not attached to a breaker yet.
            BackendError: Redis failed or did not answer within the client's timeout.
        """
        core, now = self._core, self._now
        if core is None or now is None:
            raise ConfigurationError("attach the RedisSharedState to a CircuitBreaker first")
        state = core.state
        calls = failures = slow = 0
        if state is _CLOSED or state is _OPEN:  # the sliding window (kept while OPEN)
            window = core.window
            window.advance(now())
            calls, failures, slow = window.calls, window.failures, window.slow_calls
        proposal = self._proposal
        proposed = ""
        if proposal is not None and proposal[1] == core.generation:
            proposed = str(proposal[0].value)
        config = core.config
        known = self._epoch
        args: list[EncodableT] = [
            self._replica,
            known,
            calls,
            failures,
            slow,
            config.minimum_calls,
            repr(config.failure_rate_threshold),
            repr(config.slow_call_rate_threshold),
            _ms(core.open_wait),
            proposed,
            _ms(core.open_wait),
            _ms(self._stale_after),
            _ms(max(self._stale_after, core.open_wait) * 10),
            self._channel,
            "",
        ]
        try:
            reply = await run_sync(self._client, self._keys, args)
        except BackendError as exc:
            self._sync_failed(exc)
            raise
        self._sync_succeeded()
        if self._proposal is proposal:
            self._proposal = None
        # A notification adopted while this sync was in flight (pub/sub can travel on
        # another node's connection) is newer than the reply: an epoch between the two is
        # a late reply, not a lost record.
        if not known <= reply.epoch < self._epoch:
            self._adopt(reply.epoch, reply.state, reply.elapsed, reply.open_wait)
        return reply

    async def _sync_forever(self) -> None:
        wake = self._wake
        while True:
            if self._guard.available():
                with contextlib.suppress(BackendError):  # counted and logged by sync()
                    await self.sync()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await wake.wait()
            wake.clear()

    def _sync_failed(self, exc: BackendError) -> None:
        self._failed_syncs += 1
        self._guard.record_failure()
        if self._available or self._failed_syncs == 1:
            _logger.warning(
                "circuit breaker %r cannot share its state, deciding locally until Redis "
                "answers again: %s",
                self._name,
                exc,
            )
        self._available = False

    def _sync_succeeded(self) -> None:
        self._syncs += 1
        self._guard.record_success()
        if not self._available and self._failed_syncs:
            _logger.info("circuit breaker %r shares its state again", self._name)
        self._available = True

    # -- notifications ---------------------------------------------------------

    def _on_subscribed(self) -> None:
        # Redis is back: sync now rather than after the guard's backoff, and catch up
        # with the transitions published while the channel was not subscribed.
        self._guard.record_success()
        self._wake.set()

    def notify(self, payload: bytes) -> None:
        """Adopt a transition published by a replica, `b"epoch:state:elapsed_ms:wait_ms"`.

        Args:
            payload: The pub/sub message's data; malformed data is ignored.
        """
        try:
            epoch, state, elapsed, wait = (int(part) for part in payload.split(b":"))
            shared_state = _SHARED_STATES[state]
        except (ValueError, KeyError):
            return
        self._notifications += 1
        self._adopt(epoch, shared_state, elapsed / 1000, wait / 1000)

    # -- adoption --------------------------------------------------------------

    def _adopt(self, epoch: int, state: BreakerState, elapsed: float, wait: float) -> None:
        """Follow a shared record seen at `epoch`, unless this replica already has."""
        known = self._epoch
        if epoch == known:
            return
        core, now = self._core, self._now
        assert core is not None  # syncs and notifications need attach()
        assert now is not None
        self._epoch = epoch
        self._shared_state = state
        first = known < 0 or epoch < known  # first sync, or the record was lost
        local = core.state
        if local is BreakerState.DISABLED or local is BreakerState.FORCED_OPEN:
            return  # left only explicitly
        self._adopting = True
        try:
            at = now()
            if state is _OPEN:
                changed = core.transition_to(_OPEN, at)
                core.opened_at = at - elapsed
                core.open_wait = wait
            else:
                changed = not first and core.transition_to(_CLOSED, at)
        finally:
            self._adopting = False
        self._adopted += changed

    def _on_change(self, change: StateChange) -> None:
        """The breaker's listener: publish trial results, sync at once after a local trip."""
        if self._adopting:
            return
        self._start_in_running_loop()
        previous, state = change.from_state, change.to_state
        if previous is _HALF_OPEN and (state is _CLOSED or state is _OPEN):
            assert self._core is not None  # listeners come from attach()
            self._proposal = (state, self._core.generation)
        elif not (previous is _CLOSED and state is _OPEN):
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- inspection ------------------------------------------------------------

    def statistics(self) -> SharedStateStatistics:
        """Return a snapshot of the shared state's activity.

        Returns:
            A frozen `SharedStateStatistics`.
        """
        return SharedStateStatistics(
            name=self._name,
            epoch=self._epoch,
            shared_state=self._shared_state,
            syncs=self._syncs,
            failed_syncs=self._failed_syncs,
            adopted=self._adopted,
            notifications=self._notifications,
            available=self._available,
        )

    def __repr__(self) -> str:
        shared = "unknown" if self._shared_state is None else self._shared_state.label
        running = "running" if self._task is not None else "stopped"
        return (
            f"<RedisSharedState {self._name!r} {running} shared={shared} epoch={self._epoch} "
            f"syncs={self._syncs} failed={self._failed_syncs} client={self._client!r}>"
        )
