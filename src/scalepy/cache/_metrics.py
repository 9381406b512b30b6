"""The cache's metric catalogue: every instrument a cache and its invalidation bus emit.

Names and attribute keys live under `scalepy.cache`; the attribute constants are
the keys recording sites use, so a label cannot drift from its declaration.
"""

from __future__ import annotations

from scalepy.telemetry import ERROR_TYPE, Metric, MetricKind

__all__ = (
    "BACKEND_ERRORS",
    "BUS_MESSAGES",
    "BUS_RESETS",
    "CACHE_NAME",
    "COALESCED",
    "INVALIDATIONS",
    "INVALIDATION_KIND",
    "INVALIDATION_ORIGIN",
    "LOAD_DURATION",
    "LOCAL_SIZE",
    "MESSAGE_KIND",
    "METRICS",
    "NAMESPACE",
    "OPERATION",
    "OVERSIZED",
    "REQUESTS",
    "RESULT",
    "TIER",
    "UNDECODABLE",
    "UNENCODABLE",
)

NAMESPACE = "scalepy.cache"

CACHE_NAME = "scalepy.cache.name"
"""The cache's name (its namespace unless given)."""
RESULT = "scalepy.cache.result"
"""How a lookup ended: `hit`, `stale`, `miss` or `error`."""
TIER = "scalepy.cache.tier"
"""What answered a lookup: `l1`, `l2` or `loader`."""
INVALIDATION_KIND = "scalepy.cache.invalidation.kind"
"""What an invalidation dropped: `key`, `tag` or `clear`."""
INVALIDATION_ORIGIN = "scalepy.cache.invalidation.origin"
"""Where an invalidation came from: `local` or `remote` (another process)."""
OPERATION = "scalepy.cache.operation"
"""The backend operation that failed, e.g. `get` or `set`."""
MESSAGE_KIND = "scalepy.cache.message.kind"
"""A message on the invalidation channel: `heartbeat`, `invalidation` or `unreadable`."""

REQUESTS = Metric(
    name="scalepy.cache.requests",
    kind=MetricKind.COUNTER,
    unit="{request}",
    description="Cache lookups, by result (hit, stale, miss, error) and the tier that answered.",
    labels=(CACHE_NAME, RESULT, TIER),
)
COALESCED = Metric(
    name="scalepy.cache.requests.coalesced",
    kind=MetricKind.COUNTER,
    unit="{request}",
    description="Lookups that shared another caller's in-flight lookup instead of their own.",
    labels=(CACHE_NAME,),
)
LOAD_DURATION = Metric(
    name="scalepy.cache.load.duration",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time taken by the cached function (the loader) to compute a value.",
    labels=(CACHE_NAME,),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INVALIDATIONS = Metric(
    name="scalepy.cache.invalidations",
    kind=MetricKind.COUNTER,
    unit="{invalidation}",
    description="Invalidations applied, by kind (key, tag, clear) and origin (local, remote).",
    labels=(CACHE_NAME, INVALIDATION_KIND, INVALIDATION_ORIGIN),
)
LOCAL_SIZE = Metric(
    name="scalepy.cache.local.size",
    kind=MetricKind.GAUGE,
    unit="{entry}",
    description="Values held in the in-process L1 cache.",
    labels=(CACHE_NAME,),
)
BACKEND_ERRORS = Metric(
    name="scalepy.cache.backend.errors",
    kind=MetricKind.COUNTER,
    unit="{error}",
    description="Cache backend operations that failed, by operation and exception type.",
    labels=(CACHE_NAME, OPERATION, ERROR_TYPE),
)
UNDECODABLE = Metric(
    name="scalepy.cache.entries.undecodable",
    kind=MetricKind.COUNTER,
    unit="{entry}",
    description="Reads that found an entry they could not decode, treated as misses.",
    labels=(CACHE_NAME,),
)
OVERSIZED = Metric(
    name="scalepy.cache.values.oversized",
    kind=MetricKind.COUNTER,
    unit="{value}",
    description="Values returned but not stored: serialized, larger than max_value_bytes.",
    labels=(CACHE_NAME,),
)
UNENCODABLE = Metric(
    name="scalepy.cache.values.unencodable",
    kind=MetricKind.COUNTER,
    unit="{value}",
    description="Values returned but not stored: the serializer could not encode them.",
    labels=(CACHE_NAME,),
)
BUS_MESSAGES = Metric(
    name="scalepy.cache.bus.messages",
    kind=MetricKind.COUNTER,
    unit="{message}",
    description="Messages received on the cache invalidation channel, by kind.",
    labels=(MESSAGE_KIND,),
)
BUS_RESETS = Metric(
    name="scalepy.cache.bus.resets",
    kind=MetricKind.COUNTER,
    unit="{reset}",
    description="Times the invalidation channel was subscribed again and the L1 was dropped.",
)

METRICS = (
    REQUESTS,
    COALESCED,
    LOAD_DURATION,
    INVALIDATIONS,
    LOCAL_SIZE,
    BACKEND_ERRORS,
    UNDECODABLE,
    OVERSIZED,
    UNENCODABLE,
    BUS_MESSAGES,
    BUS_RESETS,
)
"""Every metric a cache emits, in the order the reference lists them."""
