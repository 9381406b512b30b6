"""A read-only lease: a replica chosen by the cluster, or the primary as the fallback.

Replicas are tried in the order `PostgresCluster._choose()` gives, each under the
read's one deadline; a replica that cannot be reached is marked failed and the
next one tried, then the primary. A replica that drops the lent connection is
marked failed when the connection comes back.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from scalepy.errors import BackendError

if TYPE_CHECKING:
    from types import TracebackType

    from scalepy.backends.guard import BackendGuard
    from scalepy.health import Check
    from scalepy.pools._connection import Connection, Pooled
    from scalepy.pools._pool import PostgresPool

__all__ = ("ReadLease", "Replicated", "steering")


class Replicated(Protocol):
    """What a lease uses of its `PostgresCluster`, which imports this module."""

    @property
    def _primary(self) -> PostgresPool: ...
    @property
    def _replicas(self) -> tuple[PostgresPool, ...]: ...
    @property
    def _guards(self) -> tuple[BackendGuard, ...]: ...
    def _choose(self, tried: int) -> int | None: ...
    def _fell_back(self) -> None: ...


def steering(check: Check, guard: BackendGuard) -> Check:
    """Wrap a replica's check so its outcome also takes the replica out of or into rotation."""
    probe = check.probe

    async def steering_probe() -> Any:
        try:
            result = await probe()
        except Exception:
            guard.record_failure()
            raise
        guard.record_success()
        return result

    return replace(check, probe=steering_probe)


class ReadLease:
    """A read-only lease: a replica chosen by the cluster, or the primary as the fallback."""

    __slots__ = ("_cluster", "_index", "_pool", "_pooled", "_timeout", "lost_replica")

    # Set by __aenter__, used by __aexit__ (never called unless __aenter__ succeeded).
    _pool: PostgresPool
    _pooled: Pooled

    def __init__(self, cluster: Replicated, timeout: float | None) -> None:
        self._cluster = cluster
        self._timeout = timeout
        self._index = -1  # the replica serving, if any
        self.lost_replica = False  # the replica dropped the lent connection

    async def __aenter__(self) -> Connection:
        cluster = self._cluster
        loop = asyncio.get_running_loop()
        wait = self._timeout
        if wait is None:
            wait = cluster._primary.options.acquire_timeout
        deadline = loop.time() + wait
        tried = 0
        index = cluster._choose(tried)
        while index is not None:
            replica, guard = cluster._replicas[index], cluster._guards[index]
            probing = guard.is_open
            try:
                pooled = replica._lend_idle() or await replica._acquire_slow(wait, deadline)
            except BackendError:
                guard.record_failure()
                tried |= 1 << index
                index = cluster._choose(tried)
                continue
            except BaseException:
                if probing:  # a probe must report, or the replica stays skipped for good
                    guard.record_failure()
                raise
            guard.record_success()
            self._pool, self._pooled, self._index = replica, pooled, index
            return pooled.connection
        cluster._fell_back()
        primary = cluster._primary
        pooled = primary._lend_idle() or await primary._acquire_slow(wait, deadline)
        self._pool, self._pooled = primary, pooled
        return pooled.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pooled = self._pooled
        if self._index >= 0 and pooled.connection.is_closed():
            self.lost_replica = True
            self._cluster._guards[self._index].record_failure()
        await self._pool._release(pooled, clean=exc_type is None)
