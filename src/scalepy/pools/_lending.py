"""How a connection is lent and returned: the fast path, waiting, opening, checking, resetting.

`Lender` adds to the pool's books (`Ledger`) the steps that talk to the server,
each written so that cancelling the task at its await leaves nothing behind:

- opening a connection for an acquirer: it runs in a task of its own, so an
  acquirer that gives up leaves the connection to the pool (or, if opening
  fails, frees the slot);
- checking a connection that idled (`SELECT 1`): it is closed if that fails;
- resetting a returned connection (unless `session_reset` is off and it came back
  clean): it is closed if that fails or is cancelled.

Waiting is one future per waiter and one timer for its deadline, never a task,
and a connection that is idle and needs no check is lent without any await.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from scalepy.errors import PoolClosedError, PoolNotOpenError, PoolTimeoutError
from scalepy.pools._connection import Pooled, open_connection
from scalepy.pools._ledger import Ledger, Signal

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from scalepy.clock import Clock
    from scalepy.pools._config import PoolOptions
    from scalepy.pools._connection import Connection
    from scalepy.pools._metrics import PoolRecorders

__all__ = ("Lease", "Lender")


class Lender(Ledger):
    """Lends and takes back connections to one server; see the module docstring.

    Args:
        dsn: Where to connect.
        backend: The DSN with its password masked, for errors.
        name: The pool's name.
        options: The pool's options.
        clock: Measures ages and waits.
        recorders: Where the metrics go.
        rng: Uniform random numbers in [0, 1) for the lifetime jitter.
    """

    __slots__ = (
        "_accepting",
        "_backend",
        "_created",
        "_dsn",
        "_openings",
        "_pending",
        "_rng",
        "_timeouts",
    )

    def __init__(
        self,
        dsn: str,
        *,
        backend: str,
        name: str,
        options: PoolOptions,
        clock: Clock,
        recorders: PoolRecorders,
        rng: Callable[[], float],
    ) -> None:
        super().__init__(name=name, options=options, clock=clock, recorders=recorders)
        self._dsn = dsn
        self._backend = backend
        self._rng = rng
        self._accepting = False
        self._openings: set[asyncio.Task[Pooled]] = set()  # connections being opened for acquirers
        self._pending = self._timeouts = self._created = 0

    def _lend_idle(self) -> Pooled | None:
        """The fast path: lend the most recently used idle connection if it needs no check."""
        if not self._accepting or self._line_ahead():
            return None
        now = self._clock.now()
        pooled = self._top_idle(now)
        if pooled is None or self._needs_check(pooled, now):
            return None
        self._idle.pop()
        self._recorders.count(-1, self._recorders.idle)
        self._lend(pooled, now)
        self._recorders.wait_time(0.0, self._recorders.labels)
        return pooled

    async def _acquire_slow(self, wait: float | None, deadline: float | None = None) -> Pooled:
        """Wait in line, open or check a connection, under the acquire deadline.

        Args:
            wait: Seconds the caller may wait (the pool's if `None`); errors report it.
            deadline: When to give up, in event-loop time, if not `wait` from now.
        """
        if wait is None:
            wait = self.options.acquire_timeout
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + wait
        started = self._clock.now()
        self._pending += 1
        self._recorders.pending(1, self._recorders.labels)
        try:
            pooled = await self._obtain(loop, deadline, wait)
        finally:
            self._pending -= 1
            self._recorders.pending(-1, self._recorders.labels)
        if self._closing:  # closed while the connection was on its way
            self._terminate(pooled)
            raise PoolClosedError(self.name)
        now = self._clock.now()
        self._lend(pooled, now)
        self._recorders.wait_time(now - started, self._recorders.labels)
        return pooled

    async def _obtain(
        self, loop: asyncio.AbstractEventLoop, deadline: float, wait: float
    ) -> Pooled:
        while True:
            if not self._accepting:
                raise PoolClosedError(self.name) if self._closing else PoolNotOpenError(self.name)
            if loop.time() >= deadline:
                raise self._timed_out(wait)
            if not self._line_ahead():
                now = self._clock.now()
                pooled = self._top_idle(now)
                if pooled is not None:
                    self._idle.pop()
                    self._recorders.count(-1, self._recorders.idle)
                    if self._needs_check(pooled, now) and not await self._check(
                        pooled, loop, deadline
                    ):
                        continue
                    return pooled
                if self._size < self.options.max_size:
                    self._size += 1
                    return await self._fill_slot(loop, deadline, wait)
            handoff = await self._wait(loop, deadline)
            if handoff is None:  # a slot was freed for us
                return await self._fill_slot(loop, deadline, wait)
            if handoff is Signal.EXPIRED:
                raise self._timed_out(wait)
            if handoff is Signal.CLOSED:
                raise PoolClosedError(self.name)
            return handoff  # just returned, so fresh: no check needed

    async def _check(
        self, pooled: Pooled, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> bool:
        """Run `SELECT 1` on a connection that idled; close it if that fails."""
        timeout = min(self.options.connect_timeout, deadline - loop.time())
        try:
            await pooled.connection.execute("SELECT 1", timeout=timeout)
        except BaseException as exc:
            self._drop(pooled, "validation")
            if isinstance(exc, Exception):
                return False
            raise
        return True

    def _timed_out(self, wait: float) -> PoolTimeoutError:
        self._timeouts += 1
        self._recorders.timeouts(1, self._recorders.labels)
        return PoolTimeoutError(self.name, wait)

    async def _fill_slot(
        self, loop: asyncio.AbstractEventLoop, deadline: float, wait: float
    ) -> Pooled:
        """Open a connection in the slot this task holds, in a task of its own.

        The acquirer waits for it until its deadline. If it gives up first (its
        deadline, or cancellation), the opening goes on and the connection joins
        the pool: a handshake is not wasted, and a slow server is not hit again
        and again by acquirers that keep giving up.
        """
        opening = loop.create_task(self._connect(self.options.connect_timeout))
        self._openings.add(opening)
        opening.add_done_callback(self._openings.discard)
        try:
            done, _ = await asyncio.wait((opening,), timeout=deadline - loop.time())
        except BaseException:
            opening.add_done_callback(self._adopt)
            raise
        if not done:
            opening.add_done_callback(self._adopt)
            raise self._timed_out(wait)
        if opening.cancelled():  # only close() cancels an opening
            self._free_slot()
            raise PoolClosedError(self.name)
        try:
            return opening.result()
        except BaseException:
            self._free_slot()
            raise

    def _adopt(self, opening: asyncio.Task[Pooled]) -> None:
        """Take in a connection opened for an acquirer that gave up; free the slot if it failed."""
        if opening.cancelled() or opening.exception() is not None:
            self._free_slot()
        else:
            self._put_back(opening.result())

    async def _connect(self, limit: float) -> Pooled:
        started = self._clock.now()
        connection = await open_connection(
            self._dsn, self.options, limit=limit, backend=self._backend
        )
        now = self._clock.now()
        self._created += 1
        self._recorders.create_time(now - started, self._recorders.labels)
        lifetime = self.options.max_lifetime
        if lifetime is None:
            return Pooled(connection, created_at=now, expires_at=math.inf)
        lifetime *= 1 - self.options.lifetime_jitter * self._rng()
        return Pooled(connection, created_at=now, expires_at=now + lifetime)

    async def _add_idle(self) -> None:
        """Open one connection into the pool (or straight to a waiter)."""
        self._size += 1
        try:
            pooled = await self._connect(self.options.connect_timeout)
        except BaseException:
            self._free_slot()
            raise
        self._put_back(pooled)

    async def _release(self, pooled: Pooled, *, clean: bool = False) -> None:
        """Reset a returned connection and put it back, or close it if unfit.

        Args:
            pooled: The connection.
            clean: The block ended without an error: with `session_reset` off, a
                connection outside a transaction then needs no reset.
        """
        connection = pooled.connection
        if self._leased.get(connection) is not pooled:
            return  # already terminated by close()
        self._recorders.use_time(self._clock.now() - pooled.leased_at, self._recorders.labels)
        reason = self._unfit(pooled)
        if reason is None and not self._closing:
            try:
                if not self.options.pgbouncer:
                    if self.options.session_reset or not clean or connection.is_in_transaction():
                        await connection.reset(timeout=self.options.connect_timeout)
                elif connection.is_in_transaction():
                    reason = "reset"  # PgBouncer pins the server connection: do not return it
            except BaseException as exc:
                if self._leased.get(connection) is pooled:
                    self._unlease(pooled)
                    self._drop(pooled, "reset")
                if isinstance(exc, Exception):
                    return  # the caller's work is done; only the connection is lost
                raise
        self._unlease(pooled)
        if reason is None:
            self._put_back(pooled)
        else:
            self._drop(pooled, reason)

    def _unfit(self, pooled: Pooled) -> str | None:
        if pooled.connection.is_closed():
            return "broken"
        if self._clock.now() >= pooled.expires_at:
            return "lifetime"
        return None


class Lease:
    """One lease of a connection, as an async context manager: what `acquire()` returns."""

    __slots__ = ("_pool", "_pooled", "_timeout")

    def __init__(self, pool: Lender, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._pooled: Pooled | None = None

    async def __aenter__(self) -> Connection:
        pool = self._pool
        pooled = pool._lend_idle()
        if pooled is None:
            pooled = await pool._acquire_slow(self._timeout)
        self._pooled = pooled
        return pooled.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            await self._pool._release(pooled, clean=exc_type is None)
