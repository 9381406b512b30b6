"""The pool's bookkeeping: which connection is idle, lent or on its way, and who waits.

`Ledger` does no I/O. Every method is synchronous except `_wait()`, which parks
the caller on a future, so each change to the books (the idle stack, the lent
set, the slot count, the waiting line) happens between two awaits of the pool,
and a task cancelled at any await point never finds them half-updated.

A *slot* is the right to hold one connection; at most `max_size` exist. A slot
is taken before a connection is opened and freed when it is closed. Whatever is
freed goes to the longest waiter first: a returned connection is handed over
as it is, a freed slot lets the waiter open a connection of its own. A waiter
cancelled at the very moment something is handed to it passes it on.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from typing import TYPE_CHECKING

from scalepy.pools._connection import Pooled, capture_stack, describe_holder

if TYPE_CHECKING:
    from scalepy.clock import Clock
    from scalepy.pools._config import PoolOptions
    from scalepy.pools._connection import Connection
    from scalepy.pools._metrics import PoolRecorders

__all__ = ("Handoff", "Ledger", "Signal")

_logger = logging.getLogger("scalepy.pools")


class Signal(enum.Enum):
    """What wakes a waiter that gets neither a connection nor a slot."""

    EXPIRED = "expired"
    """Its deadline passed."""
    CLOSED = "closed"
    """The pool is closing."""


Handoff = Pooled | Signal | None
"""What a waiter is woken with: a connection, a free slot to open one in (`None`), or a signal."""


class Ledger:
    """Where a pool's connections are, and who waits for one; see the module docstring.

    Args:
        name: The pool's name, for logs.
        options: The pool's options.
        clock: Reads the time connections go idle and are lent.
        recorders: Where the counts go as they change.
    """

    __slots__ = (
        "_acquired",
        "_clock",
        "_closing",
        "_drained",
        "_idle",
        "_leaks",
        "_leased",
        "_recorders",
        "_recycled",
        "_size",
        "_waiters",
        "name",
        "options",
    )

    def __init__(
        self, *, name: str, options: PoolOptions, clock: Clock, recorders: PoolRecorders
    ) -> None:
        self.name = name
        self.options = options
        self._clock = clock
        self._recorders = recorders
        self._idle: deque[Pooled] = deque()  # the right end is the most recently used
        self._leased: dict[Connection, Pooled] = {}
        self._waiters: deque[asyncio.Future[Handoff]] = deque()
        self._size = 0  # slots taken: idle + lent + being opened, checked or handed over
        self._closing = False
        self._drained: asyncio.Event | None = None  # set when the last slot is freed on close
        self._acquired = self._leaks = 0
        self._recycled = dict.fromkeys(recorders.reasons, 0)

    def _line_ahead(self) -> bool:
        """Whether live waiters are in line (a newcomer must not overtake them)."""
        waiters = self._waiters
        while waiters and waiters[0].done():  # cancelled, not yet resumed to leave
            waiters.popleft()
        return bool(waiters)

    def _top_idle(self, now: float) -> Pooled | None:
        """The most recently used idle connection, closing dead or expired ones on top."""
        idle = self._idle
        while idle:
            pooled = idle[-1]
            broken = pooled.connection.is_closed()
            if not broken and now < pooled.expires_at:
                return pooled
            idle.pop()
            self._recorders.count(-1, self._recorders.idle)
            self._drop(pooled, "broken" if broken else "lifetime")
        return None

    def _lend(self, pooled: Pooled, now: float) -> None:
        pooled.leased_at = now
        self._leased[pooled.connection] = pooled
        self._acquired += 1
        self._recorders.count(1, self._recorders.used)
        if self.options.leak_threshold is not None:
            pooled.task = asyncio.current_task()
            pooled.warned = False
            if self.options.leak_trace:
                pooled.stack = capture_stack()

    def _unlease(self, pooled: Pooled) -> None:
        del self._leased[pooled.connection]
        self._recorders.count(-1, self._recorders.used)
        pooled.task = pooled.stack = None  # keep no finished task (or its result) alive

    def _needs_check(self, pooled: Pooled, now: float) -> bool:
        after = self.options.validate_after_idle
        return after is not None and now - pooled.idle_since >= after

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Handoff:
        waiter: asyncio.Future[Handoff] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_at(deadline, self._expire, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._pass_on(waiter.result())  # handed over just as we were cancelled
            else:  # still in line, or already skipped by a hand-off
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[Handoff]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_result(Signal.EXPIRED)

    def _pass_on(self, handoff: Handoff) -> None:
        if isinstance(handoff, Pooled):
            self._put_back(handoff)
        elif handoff is None:
            self._free_slot()

    def _hand_over(self, handoff: Pooled | None) -> bool:
        """Wake the longest live waiter with a connection or a free slot; whether there was one."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(handoff)
                return True
        return False

    def _put_back(self, pooled: Pooled) -> None:
        """Give a connection this pool holds to the longest waiter, or make it idle."""
        if self._closing:
            self._terminate(pooled)
        elif not self._hand_over(pooled):
            pooled.idle_since = self._clock.now()
            self._idle.append(pooled)
            self._recorders.count(1, self._recorders.idle)

    def _free_slot(self) -> None:
        """Give a freed slot to the longest waiter (to open a connection), or release it."""
        if self._hand_over(None):
            return
        self._size -= 1
        if self._size == 0 and self._drained is not None:
            self._drained.set()

    def _drop(self, pooled: Pooled, reason: str) -> None:
        """Close a connection the pool gave up on, and free its slot."""
        self._recycled[reason] += 1
        self._recorders.recycled(1, self._recorders.reasons[reason])
        self._terminate(pooled)

    def _terminate(self, pooled: Pooled) -> None:
        # terminate() cannot be interrupted, unlike close(); outside a transaction
        # the server ends the session quietly on the closed socket.
        pooled.connection.terminate()
        self._free_slot()

    def _retire_idle(self, now: float) -> None:
        """Close idle connections that are dead, too old, or idle too long beyond `min_size`."""
        max_idle = self.options.max_idle
        spare = self._size - self.options.min_size
        keep: deque[Pooled] = deque()
        retire: list[tuple[Pooled, str]] = []
        for pooled in self._idle:  # least recently used first
            if pooled.connection.is_closed():
                retire.append((pooled, "broken"))
            elif now >= pooled.expires_at:
                retire.append((pooled, "lifetime"))
            elif (
                max_idle is not None and spare > len(retire) and now - pooled.idle_since >= max_idle
            ):
                retire.append((pooled, "idle"))
            else:
                keep.append(pooled)
        if retire:
            self._idle = keep
            self._recorders.count(-len(retire), self._recorders.idle)
            for pooled, reason in retire:
                self._drop(pooled, reason)

    def _report_leaks(self, now: float, threshold: float) -> None:
        for pooled in self._leased.values():
            held = now - pooled.leased_at
            if held >= threshold and not pooled.warned:
                pooled.warned = True
                self._leaks += 1
                self._recorders.leaks(1, self._recorders.labels)
                _logger.warning(
                    "pool %r: a connection has been held for %.1f s (leak threshold %.1f s) by %s",
                    self.name,
                    held,
                    threshold,
                    describe_holder(pooled),
                )
