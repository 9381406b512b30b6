"""`PostgresPool`: asyncpg connections to one server, lent under a deadline, never leaked.

This module is the pool's life: opening (warm-up), the background sweeps (leaks,
idle and old connections, refilling to `min_size`), closing (refuse, drain,
terminate) and what it reports. Lending is in `_lending`, the books in `_ledger`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from scalepy._lifecycle import AsyncResource
from scalepy._validation import check_finite, check_name
from scalepy.clock import MonotonicClock
from scalepy.errors import PoolClosedError
from scalepy.pools._config import PoolOptions, _check_dsn, mask_dsn
from scalepy.pools._ledger import Signal
from scalepy.pools._lending import Lease, Lender
from scalepy.pools._metrics import PoolRecorders
from scalepy.pools._statistics import PoolStatistics
from scalepy.telemetry import get_default

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from scalepy.clock import Clock
    from scalepy.pools._connection import Connection
    from scalepy.telemetry import Instrumentation

__all__ = ("PostgresPool",)

_logger = logging.getLogger("scalepy.pools")
_MAINTENANCE_INTERVAL = 1.0  # seconds between sweeps (leaks, idle, lifetime, min_size)
_DEFAULT_GRACE = 10.0


class PostgresPool(Lender, AsyncResource):
    """A pool of asyncpg connections to one PostgreSQL server.

    ```python
    async with PostgresPool("postgresql://app@127.0.0.1/app") as pool:
        async with pool.acquire() as connection:
            await connection.fetchval("SELECT 1")
    ```

    Connections are lent most-recently-used first, so a quiet pool shrinks back to
    `min_size` as the others pass `max_idle`. Waiters are served first-in,
    first-out; a returned connection goes straight to the longest waiter. A task
    cancelled anywhere in `acquire()`, in the block, or while the connection is
    reset on its way back, never leaks a connection or a slot.

    Args:
        dsn: A `postgresql://` URL, as asyncpg accepts it.
        name: The pool's name in metrics, statistics and errors.
        options: How the pool behaves; `PoolOptions()` if `None`.
        clock: Measures connection ages, idle times and lease durations, and paces
            the background sweeps; the monotonic clock if `None`. The acquire
            deadline runs on the event loop's own timer.
        instrumentation: Where metrics go; the process default if `None`.
        rng: Uniform random numbers in [0, 1) for the lifetime jitter.

    Raises:
        InvalidBackendURL: The DSN is not a `postgresql://` or `postgres://` URL.
        ConfigurationError: The name is empty.
    """

    __slots__ = ("_closed", "_done", "_maintenance", "_opened")

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "primary",
        options: PoolOptions | None = None,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        check_name("PostgresPool", name)
        super().__init__(
            _check_dsn(dsn),
            backend=mask_dsn(dsn),
            name=name,
            options=options or PoolOptions(),
            clock=clock or MonotonicClock(),
            recorders=PoolRecorders(instrumentation or get_default(), name),
            rng=rng,
        )
        self._opened = self._closed = False
        self._maintenance: asyncio.Task[None] | None = None
        self._done: asyncio.Event | None = None  # set once close() has finished

    # -- public API -----------------------------------------------------------------

    @property
    def backend(self) -> str:
        """The server's DSN with its password masked, safe for logs."""
        return self._backend

    def acquire(self, *, timeout: float | None = None) -> AbstractAsyncContextManager[Connection]:
        """Lend a connection for the duration of an `async with` block.

        ```python
        async with pool.acquire() as connection:
            await connection.execute("UPDATE ...")
        ```

        When the block ends the connection is reset (open transaction rolled back,
        session settings, listeners and advisory locks cleared) and returned, or
        closed if it is broken or past its lifetime. Cancelling the task anywhere
        in or around the block never leaks it.

        Args:
            timeout: Seconds to wait for a connection; the pool's
                `acquire_timeout` if `None`.

        Returns:
            An async context manager yielding an `asyncpg.Connection`.

        Raises:
            ConfigurationError: A timeout that is not a finite number > 0.
            PoolTimeoutError: No connection within the deadline (on entering).
            PoolNotOpenError: The pool was never opened (on entering).
            PoolClosedError: The pool is closing or closed (on entering).
            BackendUnavailable: A new connection was needed and the server cannot
                be reached (on entering).
        """
        if timeout is not None:
            check_finite("timeout", timeout)
        return Lease(self, timeout)

    async def open(self, *, connect: bool = True) -> None:
        """Start the pool: accept acquires and run its background sweeps.

        Args:
            connect: Also open `min_size` connections now (at least one, to prove
                the server answers); on failure the pool is closed again.

        Raises:
            PoolClosedError: The pool was closed; pools do not reopen.
            BackendUnavailable: `connect` and the server cannot be reached.
            BackendError: `connect` and the server refused the credentials or database.
            InvalidBackendURL: `connect` and asyncpg refused an option of the DSN.
        """
        if self._closing:
            raise PoolClosedError(self.name)
        if not self._opened:
            self._opened = self._accepting = True
            self._recorders.maximum(self.options.max_size, self._recorders.labels)
            self._recorders.minimum(self.options.min_size, self._recorders.labels)
            self._maintenance = asyncio.get_running_loop().create_task(
                self._maintain(), name=f"scalepy.pools[{self.name}].maintenance"
            )
        if connect:
            try:
                await self._warm_up()
            except BaseException:
                await self.aclose(0)
                raise

    async def aclose(self, grace: float | None = None) -> None:
        """Close the pool gracefully: refuse, drain, then terminate.

        New acquires, and those waiting in line, fail with `PoolClosedError` at
        once; idle connections are closed; lent connections are closed as they
        come back. After `grace` seconds, connections still lent are terminated
        (their holders' queries fail). Closing twice is harmless.

        Args:
            grace: Seconds lent connections get to come back; 10 if `None`.
        """
        if self._closed:
            return
        if self._done is not None:  # another task is closing it: wait for that
            await self._done.wait()
            return
        self._done = asyncio.Event()
        self._accepting = False
        self._closing = True
        try:
            await self._shut_down(_DEFAULT_GRACE if grace is None else grace)
        finally:
            self._closed = True
            if self._opened:
                self._recorders.maximum(-self.options.max_size, self._recorders.labels)
                self._recorders.minimum(-self.options.min_size, self._recorders.labels)
            self._done.set()

    def statistics(self) -> PoolStatistics:
        """Return what the pool holds and has done.

        Returns:
            A frozen snapshot.
        """
        idle, used = len(self._idle), len(self._leased)
        return PoolStatistics(
            name=self.name,
            backend=self._backend,
            state=self._state(),
            size=idle + used,
            idle=idle,
            used=used,
            opening=self._size - idle - used,
            pending=self._pending,
            min_size=self.options.min_size,
            max_size=self.options.max_size,
            acquired=self._acquired,
            timeouts=self._timeouts,
            created=self._created,
            recycled=MappingProxyType(dict(self._recycled)),
            leaks=self._leaks,
        )

    def get_size(self) -> int:
        """Return the number of open connections, idle or lent (as asyncpg's `Pool`)."""
        return len(self._idle) + len(self._leased)

    def get_idle_size(self) -> int:
        """Return the number of idle connections (as asyncpg's `Pool`)."""
        return len(self._idle)

    def get_max_size(self) -> int:
        """Return the most connections the pool opens at once (as asyncpg's `Pool`)."""
        return self.options.max_size

    def __repr__(self) -> str:
        return (
            f"<PostgresPool {self.name!r} {self._backend} {self._state()} "
            f"size={len(self._idle) + len(self._leased)}/{self.options.max_size} "
            f"idle={len(self._idle)} used={len(self._leased)} pending={self._pending}>"
        )

    async def _warm_up(self) -> None:
        """Open connections up to `min_size` (at least one, to prove the server answers)."""
        missing = max(self.options.min_size, 1) - self._size
        if missing <= 0:
            return
        await self._add_idle()  # the first one fails loudly
        if missing > 1:  # the rest are best effort: the sweeps refill what fails
            await asyncio.gather(
                *(self._add_idle() for _ in range(missing - 1)), return_exceptions=True
            )

    # -- background sweeps --------------------------------------------------------------

    async def _maintain(self) -> None:
        threshold = self.options.leak_threshold
        interval = (
            _MAINTENANCE_INTERVAL
            if threshold is None
            else min(_MAINTENANCE_INTERVAL, threshold / 2)
        )
        while True:
            await self._clock.sleep(interval)
            now = self._clock.now()
            if threshold is not None:
                self._report_leaks(now, threshold)
            self._retire_idle(now)
            await self._refill()

    async def _refill(self) -> None:
        """Open connections up to `min_size`; a server that is down is retried next sweep."""
        while self._accepting and self._size < self.options.min_size:
            try:
                await self._add_idle()
            except Exception as exc:  # any failure waits for the next sweep
                _logger.debug("pool %r: cannot refill to min_size: %s", self.name, exc)
                return

    async def _shut_down(self, grace: float) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(Signal.CLOSED)
        self._waiters.clear()
        idle, self._idle = self._idle, deque()
        self._recorders.count(-len(idle), self._recorders.idle)
        for pooled in idle:
            self._terminate(pooled)
        # Connections being opened free their slots as they stop.
        background: set[asyncio.Task[Any]] = set(self._openings)
        if self._maintenance is not None:
            background.add(self._maintenance)
        for task in background:
            task.cancel()
        try:
            if self._size:
                self._drained = asyncio.Event()
                async with asyncio.timeout(grace):
                    await self._drained.wait()
        except TimeoutError:
            self._terminate_lent(f"the {grace:g} s grace period is over")
        except BaseException:
            self._terminate_lent("close() was cancelled")
            raise
        if background:
            await asyncio.wait(background)

    def _terminate_lent(self, why: str) -> None:
        lent = list(self._leased.values())
        if lent:
            _logger.warning(
                "pool %r: terminating %d connection(s) still lent: %s", self.name, len(lent), why
            )
        for pooled in lent:
            self._unlease(pooled)
            self._terminate(pooled)

    def _state(self) -> str:
        if self._closed:
            return "closed"
        if self._closing:
            return "closing"
        return "open" if self._opened else "new"
