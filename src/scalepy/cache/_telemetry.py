"""What a cache reports: metric definitions, plain counters and the statistics snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from scalepy.telemetry import Instrumentation

__all__ = (
    "BACKEND_ERRORS",
    "COALESCED",
    "INVALIDATIONS",
    "LOAD_DURATION",
    "LOCAL_SIZE",
    "OVERSIZED",
    "REQUESTS",
    "UNDECODABLE",
    "CacheStatistics",
    "Meter",
)

REQUESTS = Metric(
    name="scalepy.cache.requests",
    kind=MetricKind.COUNTER,
    unit="{request}",
    description="Cache lookups, by result (hit, stale, miss, error) and the tier that answered.",
    labels=("cache", "result", "tier"),
)
LOAD_DURATION = Metric(
    name="scalepy.cache.load.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time taken by the cached function (the loader) to compute a value.",
    labels=("cache",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
COALESCED = Metric(
    name="scalepy.cache.coalesced",
    kind=MetricKind.COUNTER,
    unit="{request}",
    description="Lookups that shared another caller's in-flight lookup instead of their own.",
    labels=("cache",),
)
INVALIDATIONS = Metric(
    name="scalepy.cache.invalidations",
    kind=MetricKind.COUNTER,
    unit="{invalidation}",
    description="Invalidations applied, by kind (key, tag, clear) and origin (local, remote).",
    labels=("cache", "kind", "origin"),
)
LOCAL_SIZE = Metric(
    name="scalepy.cache.local.size",
    kind=MetricKind.GAUGE,
    unit="{entry}",
    description="Values held in the in-process L1 cache.",
    labels=("cache",),
)
BACKEND_ERRORS = Metric(
    name="scalepy.cache.backend.errors",
    kind=MetricKind.COUNTER,
    unit="{error}",
    description="Cache backend operations that failed, by operation and error type.",
    labels=("cache", "operation", "error"),
)
UNDECODABLE = Metric(
    name="scalepy.cache.undecodable",
    kind=MetricKind.COUNTER,
    unit="{entry}",
    description="Reads that found an entry they could not decode, treated as misses.",
    labels=("cache",),
)
OVERSIZED = Metric(
    name="scalepy.cache.oversized",
    kind=MetricKind.COUNTER,
    unit="{value}",
    description="Values returned but not stored: serialized, larger than max_value_bytes.",
    labels=("cache",),
)


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
        "unreachable",
    )

    def __init__(self, name: str, instrumentation: Instrumentation) -> None:
        self.name = name
        self.labels = {"cache": name}
        self.requests = instrumentation.metric(REQUESTS)
        self.load_duration = instrumentation.metric(LOAD_DURATION)
        self.coalesced = instrumentation.metric(COALESCED)
        self.invalidations = instrumentation.metric(INVALIDATIONS)
        self.local_size = instrumentation.metric(LOCAL_SIZE)
        self.backend_errors = instrumentation.metric(BACKEND_ERRORS)
        self.undecodable = instrumentation.metric(UNDECODABLE)
        self.oversized = instrumentation.metric(OVERSIZED)
        self.request_labels = {
            (result, tier): {"cache": name, "result": result, "tier": tier}
            for result in ("hit", "stale", "miss", "error")
            for tier in ("l1", "l2", "loader")
        }
        self.invalidation_labels = {
            (kind, origin): {"cache": name, "kind": kind, "origin": origin}
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
        labels = {"cache": self.name, "operation": operation, "error": type(error).__name__}
        self.backend_errors.record(1, labels)

    def invalidated(self, kind: str, origin: str, count: int = 1) -> None:
        """Count invalidations applied."""
        self.invalidations.record(count, self.invalidation_labels[kind, origin])
