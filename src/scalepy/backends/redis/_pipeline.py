"""Automatic pipelining: the commands issued during one event-loop tick travel together.

Each command is encoded to bytes when submitted (see `_command.py`): one that cannot
be encoded fails its caller there and never joins a batch. The first command of a
tick opens a batch and schedules `_flush` with `call_soon`; asyncio runs it after
every callback already ready in this iteration, so every task woken in this tick
has had its turn to add commands. The flush hands the batch to a dispatcher, which
writes it at once on a multiplexed connection (see `_resp.py`); replies settle each
caller's own future.

Unless the caller is alone: the dispatcher is idle (every connection open, no
reply owed, nothing waiting to be written) and the last tick that submitted held
one submission. Then a command, or the commands of one `submit_many`, are written
at once: waiting for the tick's end would cost a lone caller one more event-loop
iteration per request, and gather nothing. Once written, the connection owes a
reply, so the commands that follow in the same tick still share one write, and
the ticks after that one leave whole (see `_enqueue`).

Every command has a deadline: a caller never waits longer than its timeout (the
pipeline's, or the one given to `submit`), whether its command waits for a
connection or for a reply. The commands of one batch sharing a timeout share a
deadline, and deadlines of one timeout come in the order they were opened: a queue
per timeout, and one watchdog timer armed for the earliest head, serve them all (a
timer per batch would leave thousands of stale timers in the event loop's heap at
high rates). A batch is dropped once written, and an answered group leaves its
queue as the next one joins: a finished call holds neither its command's bytes nor
its reply until its deadline.

When a deadline passes with a reply missing, that caller alone gets `BackendTimeout`;
its reply is discarded when it comes. The dispatcher drops a connection only when it
has shown no sign of life (see `_resp.py`) for as long as every caller still waiting
allows, judged a timeout after the batch was written and after the event loop
polled the sockets: a dead or frozen server, not a slow transfer, and not an event
loop too busy to write the batch in time or to read replies that had arrived. The
next command then reconnects instead of queueing behind a dead socket. A command
whose caller already gave up (timed out or cancelled) before the flush is not sent.

A deferred command (`submit_deferred`) is built by a function called at the flush,
after every task of the tick has had its turn: the caller gathers what the tick's
tasks asked for (the rate limiter's coalesced decisions) into one command, written
with the others, at no extra tick.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from scalepy._loop import PerLoop
from scalepy.backends.redis._command import encode_command
from scalepy.errors import BackendError, BackendTimeout, BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from scalepy.backends.redis._command import Command
    from scalepy.backends.redis._resp import RespConnection
    from scalepy.telemetry import Recorder

__all__ = ("AutoPipeline", "Dispatcher", "PipelineStatistics", "fail_batches")


class Dispatcher(Protocol):
    """Sends batches to the right server(s): one node, or a cluster's nodes."""

    def dispatch(self, wires: list[bytes], futures: list[asyncio.Future[Any]]) -> None:
        """Send encoded commands now (or as soon as connected); replies settle `futures`."""

    def idle(self) -> bool:
        """Whether `dispatch` would write at once to connections that owe no reply."""

    async def subscriber(self, channel: bytes, *, redirect: str | None) -> RespConnection:
        """The open connection to carry `channel`'s subscription (see `_pubsub.py`).

        `redirect` is a `MOVED` reply a subscription attempt got (cluster only).
        """

    def abort_stalled(self, silent_since: float) -> None:
        """Drop connections that owe replies and showed no sign of life after `silent_since`.

        A sign of life is reply bytes arriving, a write backlog draining, or a
        connection going from idle to busy (loop times).
        """

    def waiting(self) -> int:
        """Commands sent and not yet answered, over every connection."""

    async def aclose(self, grace: float) -> None:
        """Wait up to `grace` seconds for unanswered commands, then close every connection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineStatistics:
    """A snapshot of an `AutoPipeline`'s activity."""

    commands: int
    """Commands sent since creation."""
    batches: int
    """Pipelines sent since creation; `commands / batches` is the mean batch size."""
    waiting: int
    """Commands sent and not yet answered, now."""


class _Batch:
    """The commands of one tick, written together; dropped once written."""

    __slots__ = ("alone", "futures", "groups", "wires")

    def __init__(self, *, alone: bool) -> None:
        # Encoded commands, and functions building deferred ones at the flush.
        self.wires: list[bytes | Callable[[], Command | None]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.groups: dict[float, _Group] = {}  # by timeout
        # Opened on an idle dispatcher, and no other submission joined it (yet).
        self.alone = alone


class _Group:
    """The commands of one batch that share a timeout, hence a deadline."""

    __slots__ = ("futures", "sent_at", "settled", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.futures: list[asyncio.Future[Any]] = []
        self.settled = 0  # how many futures, from the first, are known to be done
        self.sent_at: float | None = None

    def done(self) -> bool:
        """Whether every caller has its outcome (each future is looked at once when done)."""
        futures = self.futures
        settled, count = self.settled, len(futures)
        while settled < count and futures[settled].done():
            settled += 1
        self.settled = settled
        return settled == count


class _LoopState:
    """What the pipeline holds on one event loop: its batches, watchdog and connections."""

    __slots__ = (
        "alone",
        "collecting",
        "deadlines",
        "dispatcher",
        "loop",
        "watchdog",
        "watchdog_at",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, dispatcher: Dispatcher) -> None:
        self.loop = loop
        self.dispatcher = dispatcher
        self.collecting: _Batch | None = None
        # Whether the last tick that submitted held one submission, on an idle dispatcher.
        self.alone = False
        # Per timeout, (deadline, group) oldest first; a queue left empty is removed.
        self.deadlines: dict[float, deque[tuple[float, _Group]]] = {}
        # The handle is a plain `Handle` on uvloop when its time had already passed (it
        # then runs soon, with no `when()`): its time is kept here, for every loop.
        self.watchdog: asyncio.Handle | None = None
        self.watchdog_at = 0.0


class AutoPipeline:
    """Coalesces concurrent commands into pipelines; see the module docstring.

    Everything tied to an event loop (the open batch, the deadlines and their
    watchdog, the connections) lives in a `_LoopState` of the loop that submits:
    used from another loop, the pipeline starts afresh there with new connections,
    and the previous loop's state is released on that loop (see `scalepy._loop`).

    Args:
        dispatcher: Makes the dispatcher that carries one loop's batches.
        timeout: Seconds a caller waits for its reply at most.
        backend: The server's masked URL, carried by errors.
        batch_sizes: Records each batch's size.
    """

    __slots__ = (
        "_backend",
        "_batch_sizes",
        "_batches",
        "_closed",
        "_commands",
        "_dispatcher",
        "_state",
        "_states",
        "_timeout",
    )

    def __init__(
        self,
        dispatcher: Callable[[], Dispatcher],
        *,
        timeout: float,
        backend: str,
        batch_sizes: Recorder,
    ) -> None:
        self._dispatcher = dispatcher
        self._timeout = timeout
        self._backend = backend
        self._batch_sizes = batch_sizes
        self._closed = False
        self._commands = 0
        self._batches = 0
        self._states: PerLoop[_LoopState] = PerLoop(
            self._new_state, self._release, name="scalepy.redis.connections"
        )
        self._state: _LoopState | None = None  # the last loop's, for the hot path

    def submit(self, command: Command, *, timeout: float | None = None) -> asyncio.Future[Any]:
        """Write `command` at once if its caller is alone, else with this tick's pipeline.

        Args:
            command: The command name and its arguments.
            timeout: Seconds this caller waits for its reply at most; the
                pipeline's timeout when `None`.

        Returns:
            A future settled with the reply, or with a scalepy `BackendError`.

        Raises:
            BackendUnavailable: The pipeline has been closed.
            SerializationError: The command cannot be encoded; nothing was queued.
        """
        if self._closed:
            raise BackendUnavailable("the Redis client is closed", backend=self._backend)
        return self._enqueue(encode_command(command), timeout)

    def submit_many(
        self, commands: Sequence[Command], *, timeout: float | None = None
    ) -> list[asyncio.Future[Any]]:
        """Like `submit`, for `commands` written together, next to each other and in order.

        Args:
            commands: Each a command name and its arguments.
            timeout: As for `submit`, shared by the commands.

        Returns:
            A future per command, as `submit` returns, in the order of `commands`.

        Raises:
            BackendUnavailable: The pipeline has been closed.
            SerializationError: A command cannot be encoded; nothing was queued.
        """
        if self._closed:
            raise BackendUnavailable("the Redis client is closed", backend=self._backend)
        wires = [encode_command(command) for command in commands]
        if not wires:
            return []
        state = self._loop_state()
        opens = state.collecting is None
        idle = opens and state.dispatcher.idle()
        if idle and state.alone:
            return self._write_now(state, wires, timeout)
        futures = [self._enqueue(wire, timeout) for wire in wires]
        if opens:  # the batch opened here holds one submission, however many commands
            batch = state.collecting
            assert batch is not None
            batch.alone = idle
        return futures

    def submit_deferred(
        self, build: Callable[[], Command | None], *, timeout: float | None = None
    ) -> asyncio.Future[Any]:
        """Queue the command `build` returns when the current tick's pipeline is written.

        `build` is called once, at the flush, after every task woken in this tick
        has run: it may gather what they asked for meanwhile into one command.

        Args:
            build: Returns the command, or `None` to withdraw it (its future is
                then cancelled); an exception it raises fails the future instead.
            timeout: As for `submit`; the deadline counts from now.

        Returns:
            A future settled with the reply, or with the error.

        Raises:
            BackendUnavailable: The pipeline has been closed.
        """
        if self._closed:
            raise BackendUnavailable("the Redis client is closed", backend=self._backend)
        return self._enqueue(build, timeout)

    def _enqueue(
        self, wire: bytes | Callable[[], Command | None], timeout: float | None
    ) -> asyncio.Future[Any]:
        """Write `wire` at once if the caller is alone, else add it to the tick's batch.

        Alone: the dispatcher is idle, and the last tick that submitted held one
        submission (the caller's previous one, most likely). A tick of many tasks,
        woken together by one read of their replies, leaves as one write: had its
        first command gone at once, its reply, coming apart, would wake its task
        alone, and the split would last. A deferred command waits for the flush.
        """
        loop = asyncio.get_running_loop()
        state = self._state  # `_loop_state()`, inline: every command comes here
        if state is None or state.loop is not loop:
            state = self._state = self._states.get(loop)
        batch = state.collecting
        if batch is None:
            idle = state.dispatcher.idle()
            if idle and state.alone and isinstance(wire, bytes):
                return self._write_now(state, [wire], timeout)[0]
            batch = state.collecting = _Batch(alone=idle)
            loop.call_soon(self._flush, state)
        else:
            batch.alone = False  # another submission in this tick
        if timeout is None:
            timeout = self._timeout
        group = batch.groups.get(timeout)
        if group is None:
            group = batch.groups[timeout] = _Group(timeout)
            self._watch(state, loop.time() + timeout, group)
        future: asyncio.Future[Any] = loop.create_future()
        batch.wires.append(wire)
        batch.futures.append(future)
        group.futures.append(future)
        return future

    def _write_now(
        self, state: _LoopState, wires: list[bytes], timeout: float | None
    ) -> list[asyncio.Future[Any]]:
        loop = state.loop
        group = _Group(self._timeout if timeout is None else timeout)
        futures = group.futures
        futures.extend(loop.create_future() for _ in wires)
        self._watch(state, loop.time() + group.timeout, group)
        self._send(state, wires, futures, (group,))
        return futures

    def _loop_state(self) -> _LoopState:
        """The running event loop's state, made on its first use there."""
        loop = asyncio.get_running_loop()
        state = self._state
        if state is None or state.loop is not loop:  # first use, or another event loop
            state = self._state = self._states.get(loop)
        return state

    def dispatcher(self) -> Dispatcher:
        """The running event loop's dispatcher, for what is not a command (subscriptions).

        Raises:
            BackendUnavailable: The pipeline has been closed.
        """
        if self._closed:
            raise BackendUnavailable("the Redis client is closed", backend=self._backend)
        return self._loop_state().dispatcher

    def statistics(self) -> PipelineStatistics:
        """Return a snapshot of the pipeline's counters."""
        state = self._state
        return PipelineStatistics(
            commands=self._commands,
            batches=self._batches,
            waiting=0 if state is None else state.dispatcher.waiting(),
        )

    async def aclose(self) -> None:
        """Refuse new commands, send the open batch, and wait for the replies.

        Connections of another event loop are closed by that loop (see `scalepy._loop`).
        """
        self._closed = True
        state = self._state
        if state is not None and self._states.bound_here():
            self._flush(state)
            await state.dispatcher.aclose(self._timeout)
        await self._states.aclose()

    def _new_state(self) -> _LoopState:
        return _LoopState(asyncio.get_running_loop(), self._dispatcher())

    async def _release(self, state: _LoopState) -> None:
        """Close a loop's connections on that loop: it is shutting down, or left behind."""
        batch, state.collecting = state.collecting, None
        if batch is not None:
            left = BackendUnavailable("the client left this event loop", backend=self._backend)
            fail_batches([(batch.wires, batch.futures)], left)
        if state.watchdog is not None:
            state.watchdog.cancel()
        await state.dispatcher.aclose(0)

    def _flush(self, state: _LoopState) -> None:
        batch, state.collecting = state.collecting, None
        if batch is None:
            return
        state.alone = batch.alone
        wires: list[bytes] = []
        futures: list[asyncio.Future[Any]] = []
        for wire, future in zip(batch.wires, batch.futures, strict=True):
            if future.done():
                continue
            if isinstance(wire, bytes):
                wires.append(wire)
            else:
                built = _build(wire, future)
                if built is None:
                    continue
                wires.append(built)
            futures.append(future)
        if wires:
            self._send(state, wires, futures, batch.groups.values())

    def _send(
        self,
        state: _LoopState,
        wires: list[bytes],
        futures: list[asyncio.Future[Any]],
        groups: Iterable[_Group],
    ) -> None:
        self._commands += len(wires)
        self._batches += 1
        self._batch_sizes.record(len(wires))
        state.dispatcher.dispatch(wires, futures)
        sent_at = state.loop.time()  # not before the writes
        for group in groups:
            group.sent_at = sent_at

    def _watch(self, state: _LoopState, deadline: float, group: _Group) -> None:
        queue = state.deadlines.get(group.timeout)
        if queue is None:
            queue = state.deadlines[group.timeout] = deque()
        # Answered groups leave at once, not at their deadline: each holds its
        # callers' futures, hence their replies, and the watchdog has less to do.
        while queue and queue[0][1].done():
            queue.popleft()
        queue.append((deadline, group))
        watchdog = state.watchdog
        if watchdog is None or deadline < state.watchdog_at:
            if watchdog is not None:
                watchdog.cancel()
            state.watchdog = state.loop.call_at(deadline, self._expire_due, state)
            state.watchdog_at = deadline

    def _expire_due(self, state: _LoopState) -> None:
        now = state.loop.time()
        deadlines = state.deadlines
        for timeout, queue in list(deadlines.items()):
            while queue and queue[0][0] <= now:
                self._expire(state, *queue.popleft())
            if not queue:
                del deadlines[timeout]
        earliest = min((queue[0][0] for queue in deadlines.values()), default=None)
        state.watchdog = (
            None if earliest is None else state.loop.call_at(earliest, self._expire_due, state)
        )
        state.watchdog_at = earliest or 0.0

    def _expire(self, state: _LoopState, deadline: float, group: _Group) -> None:
        expired = False
        for future in group.futures:
            if not future.done():
                expired = True
                future.set_exception(
                    BackendTimeout(f"no reply within {group.timeout} s", backend=self._backend)
                )
        sent_at = group.sent_at
        if expired and sent_at is not None:
            # A connection silent for as long as the most patient caller still waiting
            # allows (counted like this group's deadline) is dead or frozen: drop it,
            # the next command reconnects. One that makes progress, however slowly
            # (a large value on its way), is kept: its late replies are discarded.
            longest = max(group.timeout, max(state.deadlines, default=0.0))
            silent_since = sent_at - (longest - group.timeout)
            if sent_at < deadline:  # the loop polled the sockets since (this is a timer)
                state.dispatcher.abort_stalled(silent_since)
            else:  # a loop kept busy past the deadline wrote the batch just now: the
                # server gets its timeout, and the loop a poll, before it is judged
                state.loop.call_at(
                    sent_at + group.timeout, state.dispatcher.abort_stalled, silent_since
                )


def _build(build: Callable[[], Command | None], future: asyncio.Future[Any]) -> bytes | None:
    """A deferred command encoded, or `None` when withdrawn or failed (`future` then settled)."""
    try:
        command = build()
        if command is not None:
            return encode_command(command)
        future.cancel()
    except Exception as exc:  # the caller's error, raised in its future
        future.set_exception(exc)
    return None


def fail_batches(
    batches: Sequence[tuple[Sequence[object], list[asyncio.Future[Any]]]], error: BackendError
) -> None:
    """Fail every pending future of `batches` with its own copy of `error`.

    Each caller gets a fresh exception: one instance raised in many tasks would
    collect every task's traceback.
    """
    for _, futures in batches:
        for future in futures:
            if not future.done():
                future.set_exception(type(error)(error.message, backend=error.backend))
