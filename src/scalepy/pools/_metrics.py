"""The pools' metric catalogue: every instrument a connection pool emits.

The `scalepy.pool.connection.*` instruments mirror OpenTelemetry's
`db.client.connection.*` conventions for connection pools (same suffixes, kinds
and units) under scalepy's namespace. Every one is labelled with the pool's
name (`scalepy.pool.name`), and the connection count with its state (`idle` or
`used`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.telemetry import Metric, MetricKind

if TYPE_CHECKING:
    from scalepy.telemetry import Instrumentation

__all__ = (
    "CONNECTION_COUNT",
    "CONNECTION_IDLE_MIN",
    "CONNECTION_MAX",
    "CREATE_TIME",
    "LEAKS",
    "METRICS",
    "NAMESPACE",
    "PENDING_REQUESTS",
    "POOL_NAME",
    "READ_FALLBACKS",
    "RECYCLED",
    "RECYCLE_REASON",
    "STATE",
    "TIMEOUTS",
    "USE_TIME",
    "WAIT_TIME",
)

NAMESPACE = "scalepy.pool"

POOL_NAME = "scalepy.pool.name"
"""The attribute naming the pool, e.g. `primary` or `replica-1`."""
STATE = "scalepy.pool.connection.state"
"""The attribute of `CONNECTION_COUNT`: `idle` or `used`."""
RECYCLE_REASON = "scalepy.pool.recycle.reason"
"""Why the pool closed a connection: `lifetime`, `idle`, `broken`, `validation` or `reset`."""

# Seconds, from a fast pool hand-off to a request that gave up waiting.
_DURATION_BUCKETS = (
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

CONNECTION_COUNT = Metric(
    name="scalepy.pool.connection.count",
    kind=MetricKind.UP_DOWN_COUNTER,
    unit="{connection}",
    description="Open connections in the pool, by state: idle, or used (lent out).",
    labels=(POOL_NAME, STATE),
)
CONNECTION_MAX = Metric(
    name="scalepy.pool.connection.max",
    kind=MetricKind.UP_DOWN_COUNTER,
    unit="{connection}",
    description="The most connections the pool may open at once.",
    labels=(POOL_NAME,),
)
CONNECTION_IDLE_MIN = Metric(
    name="scalepy.pool.connection.idle.min",
    kind=MetricKind.UP_DOWN_COUNTER,
    unit="{connection}",
    description="Connections the pool keeps open while idle (its minimum size).",
    labels=(POOL_NAME,),
)
PENDING_REQUESTS = Metric(
    name="scalepy.pool.connection.pending_requests",
    kind=MetricKind.UP_DOWN_COUNTER,
    unit="{request}",
    description="Acquires waiting for a connection to be freed or opened.",
    labels=(POOL_NAME,),
)
TIMEOUTS = Metric(
    name="scalepy.pool.connection.timeouts",
    kind=MetricKind.COUNTER,
    unit="{timeout}",
    description="Acquires that gave up when the pool's acquire deadline passed.",
    labels=(POOL_NAME,),
)
CREATE_TIME = Metric(
    name="scalepy.pool.connection.create_time",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time taken to open a new connection.",
    labels=(POOL_NAME,),
    buckets=_DURATION_BUCKETS,
)
WAIT_TIME = Metric(
    name="scalepy.pool.connection.wait_time",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time an acquire took to obtain a connection (0 when one was idle).",
    labels=(POOL_NAME,),
    buckets=_DURATION_BUCKETS,
)
USE_TIME = Metric(
    name="scalepy.pool.connection.use_time",
    kind=MetricKind.HISTOGRAM,
    unit="s",
    description="Time between lending a connection and its return to the pool.",
    labels=(POOL_NAME,),
    buckets=_DURATION_BUCKETS,
)
RECYCLED = Metric(
    name="scalepy.pool.connection.recycled",
    kind=MetricKind.COUNTER,
    unit="{connection}",
    description=(
        "Connections the pool closed itself, by reason: lifetime, idle, broken, "
        "validation or reset."
    ),
    labels=(POOL_NAME, RECYCLE_REASON),
)
LEAKS = Metric(
    name="scalepy.pool.leaks",
    kind=MetricKind.COUNTER,
    unit="{lease}",
    description="Leases held longer than the pool's leak threshold.",
    labels=(POOL_NAME,),
)
READ_FALLBACKS = Metric(
    name="scalepy.pool.read_fallbacks",
    kind=MetricKind.COUNTER,
    unit="{acquire}",
    description="Read-only acquires served by the primary because no replica could serve them.",
    labels=(POOL_NAME,),
)


METRICS = (
    CONNECTION_COUNT,
    CONNECTION_MAX,
    CONNECTION_IDLE_MIN,
    PENDING_REQUESTS,
    TIMEOUTS,
    CREATE_TIME,
    WAIT_TIME,
    USE_TIME,
    RECYCLED,
    LEAKS,
    READ_FALLBACKS,
)
"""Every metric a pool emits, in the order the reference lists them."""


class PoolRecorders:
    """The recorders and label sets of one pool, built once so recording allocates nothing.

    Args:
        instrumentation: Where the values go.
        name: The pool's name, the value of every `POOL_NAME` label.
    """

    __slots__ = (
        "count",
        "create_time",
        "idle",
        "labels",
        "leaks",
        "maximum",
        "minimum",
        "pending",
        "reasons",
        "recycled",
        "timeouts",
        "use_time",
        "used",
        "wait_time",
    )

    def __init__(self, instrumentation: Instrumentation, name: str) -> None:
        self.labels = {POOL_NAME: name}
        self.idle = {POOL_NAME: name, STATE: "idle"}
        self.used = {POOL_NAME: name, STATE: "used"}
        self.reasons = {
            reason: {POOL_NAME: name, RECYCLE_REASON: reason}
            for reason in ("lifetime", "idle", "broken", "validation", "reset")
        }
        self.count = instrumentation.metric(CONNECTION_COUNT).record
        self.maximum = instrumentation.metric(CONNECTION_MAX).record
        self.minimum = instrumentation.metric(CONNECTION_IDLE_MIN).record
        self.pending = instrumentation.metric(PENDING_REQUESTS).record
        self.timeouts = instrumentation.metric(TIMEOUTS).record
        self.create_time = instrumentation.metric(CREATE_TIME).record
        self.wait_time = instrumentation.metric(WAIT_TIME).record
        self.use_time = instrumentation.metric(USE_TIME).record
        self.recycled = instrumentation.metric(RECYCLED).record
        self.leaks = instrumentation.metric(LEAKS).record
