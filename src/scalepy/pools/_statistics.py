"""Frozen snapshots of the pools, for health checks, dashboards and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scalepy.backends.redis import RedisClientStatistics

__all__ = ("ClusterStatistics", "PoolManagerStatistics", "PoolStatistics")


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolStatistics:
    """A snapshot of one `PostgresPool`."""

    name: str
    """The pool's name, e.g. `primary`."""
    backend: str
    """The server's DSN, password masked."""
    state: str
    """`new` (not opened yet), `open`, `closing` or `closed`."""
    size: int
    """Open connections: `idle` plus `used`."""
    idle: int
    """Connections waiting in the pool to be lent."""
    used: int
    """Connections lent out (including those being reset on their way back)."""
    opening: int
    """Connections being opened, checked or handed over; they count against `max_size`."""
    pending: int
    """Acquires waiting for a connection to be freed or opened."""
    min_size: int
    """Connections kept open while idle."""
    max_size: int
    """Most connections open at once."""
    acquired: int
    """Connections lent since the pool was created."""
    timeouts: int
    """Acquires that failed with `PoolTimeoutError`."""
    created: int
    """Connections opened since the pool was created."""
    recycled: Mapping[str, int]
    """Connections the pool closed itself, by reason: `lifetime` (too old), `idle`
    (idle too long beyond `min_size`), `broken` (found closed), `validation` (failed
    the check after idling) and `reset` (could not be reset when returned)."""
    leaks: int
    """Leases held longer than the leak threshold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterStatistics:
    """A snapshot of a `PostgresCluster`: its primary and its replicas."""

    primary: PoolStatistics
    """The primary's pool."""
    replicas: tuple[PoolStatistics, ...]
    """Each replica's pool, in configuration order."""
    replicas_available: tuple[bool, ...]
    """Per replica, whether reads are routed to it (it has not failed recently)."""
    read_fallbacks: int
    """Read-only acquires the primary served because no replica could."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolManagerStatistics:
    """A snapshot of everything a `PoolManager` owns."""

    postgres: ClusterStatistics | None
    """The PostgreSQL pools, or `None` when none is configured."""
    redis: Mapping[str, RedisClientStatistics]
    """Each Redis client's statistics, by name."""
