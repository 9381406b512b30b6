"""What a cache reports: its recorders (metrics in `_metrics`), plain counters and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy.cache._metrics import (
    BACKEND_ERRORS,
    CACHE_NAME,
    COALESCED,
    INVALIDATION_KIND,
    INVALIDATION_ORIGIN,
    INVALIDATIONS,
    LOAD_DURATION,
    LOCAL_SIZE,
    OPERATION,
    OVERSIZED,
    REQUESTS,
    RESULT,
    TIER,
    UNDECODABLE,
    UNENCODABLE,
)
from scalepy.telemetry import ERROR_TYPE

if TYPE_CHECKING:
    from scalepy.telemetry import Instrumentation

__all__ = ("CacheStatistics", "Meter")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStatistics:
    """A snapshot of a cache's activity since it was created."""

    hits: int
    """Lookups answered with a fresh value, from either tier."""
    local_hits: int
    """Of `hits`, those answered by the in-process L1."""
    stale: int
    """Lookups answered with a stale value (while revalidating, or because loading failed)."""
    misses: int
    """Lookups that found nothing usable and ran the loader."""
    errors: int
    """Lookups that could not reach the backend and ran the loader."""
    loads: int
    """Loader runs (foreground and background)."""
    load_errors: int
    """Loader runs that raised."""
    coalesced: int
    """Lookups that shared another caller's in-flight lookup."""
    oversized: int
    """Values not stored because they exceeded `max_value_bytes` once serialized."""
    local_entries: int
    """Values held in the L1 now."""
    local_bytes: int
    """Estimated memory the L1 holds now, in bytes (values, keys and bookkeeping)."""
    in_flight: int
    """Keys being looked up or loaded now."""
    backend_available: bool
    """Whether the backend guard lets calls through."""
    local_coherent: bool
    """Whether the L1 is in use now (its invalidation channel is healthy)."""


class Meter:
    """The cache's recorders, with label sets built once, and its plain counters."""

    __slots__ = (
        "backend_errors",
        "coalesced",
        "coalesced_count",
        "hits",
        "invalidation_labels",
        "invalidations",
        "labels",
        "load_duration",
        "load_errors",
        "loads",
        "local_hits",
        "local_size",
        "misses",
        "name",
        "oversized",
        "oversized_count",
        "request_labels",
        "requests",
        "stale",
        "undecodable",
        "unencodable",
        "unreachable",
    )

    def __init__(self, name: str, instrumentation: Instrumentation) -> None:
        self.name = name
        self.labels = {CACHE_NAME: name}
        self.requests = instrumentation.metric(REQUESTS)
        self.load_duration = instrumentation.metric(LOAD_DURATION)
        self.coalesced = instrumentation.metric(COALESCED)
        self.invalidations = instrumentation.metric(INVALIDATIONS)
        self.local_size = instrumentation.metric(LOCAL_SIZE)
        self.backend_errors = instrumentation.metric(BACKEND_ERRORS)
        self.undecodable = instrumentation.metric(UNDECODABLE)
        self.oversized = instrumentation.metric(OVERSIZED)
        self.unencodable = instrumentation.metric(UNENCODABLE)
        self.request_labels = {
            (result, tier): {CACHE_NAME: name, RESULT: result, TIER: tier}
            for result in ("hit", "stale", "miss", "error")
            for tier in ("l1", "l2", "loader")
        }
        self.invalidation_labels = {
            (kind, origin): {CACHE_NAME: name, INVALIDATION_KIND: kind, INVALIDATION_ORIGIN: origin}
            for kind in ("key", "tag", "clear")
            for origin in ("local", "remote")
        }
        self.hits = self.local_hits = self.stale = self.misses = self.unreachable = 0
        self.loads = self.load_errors = self.coalesced_count = self.oversized_count = 0

    def hit(self, tier: str) -> None:
        """Count a fresh value served from `tier` ("l1" or "l2")."""
        self.hits += 1
        if tier == "l1":
            self.local_hits += 1
        self.requests.record(1, self.request_labels["hit", tier])

    def served_stale(self, tier: str) -> None:
        """Count a stale value served."""
        self.stale += 1
        self.requests.record(1, self.request_labels["stale", tier])

    def miss(self) -> None:
        """Count a lookup that found nothing usable."""
        self.misses += 1
        self.requests.record(1, self.request_labels["miss", "loader"])

    def error(self) -> None:
        """Count a lookup the backend could not answer."""
        self.unreachable += 1
        self.requests.record(1, self.request_labels["error", "loader"])

    def joined(self) -> None:
        """Count a lookup that joined another caller's in-flight lookup."""
        self.coalesced_count += 1
        self.coalesced.record(1, self.labels)

    def too_large(self) -> None:
        """Count a value not stored because it exceeded `max_value_bytes`."""
        self.oversized_count += 1
        self.oversized.record(1, self.labels)

    def backend_error(self, operation: str, error: BaseException) -> None:
        """Count a failed backend operation."""
        labels = {CACHE_NAME: self.name, OPERATION: operation, ERROR_TYPE: type(error).__name__}
        self.backend_errors.record(1, labels)

    def invalidated(self, kind: str, origin: str, count: int = 1) -> None:
        """Count invalidations applied."""
        self.invalidations.record(count, self.invalidation_labels[kind, origin])
