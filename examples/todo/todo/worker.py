"""The worker process's composition root: its queue, and the pools its tasks read through.

```
scalepy worker todo.worker:queue --startup todo.worker:startup --shutdown todo.worker:shutdown
```

The command imports this module, so the queue is built here from the environment
(`Settings.from_env()`), with the tasks registered on it. `startup()` opens a
`PoolManager` before the first job is claimed; tasks reach it with
`worker_state(PoolManager)`; `shutdown()` closes it after the last job settled.
Between the two the worker also runs the `NotificationRelay` (`todo/outbox.py`),
which enqueues the notifications the app wrote to the outbox; every worker runs
one, and each takes other rows.
With `TODO_METRICS_ADDRESS` set, `startup()` also serves the worker's metrics (its
jobs, the queue's depth, its pools) there for Prometheus, until `shutdown()`.
In the single-process mode (`TODO_REDIS_URL=memory://`) the app runs its own worker
instead (`services.py`), and this module is not used.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry

from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.pools import PoolManager, PoolOptions
from scalepy.queue import Queue
from scalepy.telemetry import combine, context_propagation
from todo.metrics_server import serve_metrics
from todo.outbox import NotificationRelay
from todo.settings import Settings
from todo.tasks import register

__all__ = ("queue", "registry", "shutdown", "startup", "tasks")

settings = Settings.from_env()
registry = CollectorRegistry()
"""The worker's Prometheus registry, served on `TODO_METRICS_ADDRESS`."""
# OpenTelemetry's global providers: whatever SDK the process configures (e.g. when run
# under `opentelemetry-instrument`) gets the worker's spans, each the child of the
# request that enqueued its job.
_instrumentation = combine(
    PrometheusInstrumentation(registry=registry), OpenTelemetryInstrumentation()
)
_serving = contextlib.ExitStack()
_relays: list[NotificationRelay] = []  # the one startup() started, until shutdown()
queue = Queue(settings.redis_url, name=settings.namespace, instrumentation=_instrumentation)
tasks = register(queue)


async def startup() -> PoolManager:
    """Serve the metrics (if asked to), open the pools the tasks share (the worker's state).

    Then start relaying the outbox's notifications to the queue.
    """
    if settings.metrics_address:
        _serving.enter_context(serve_metrics(registry, settings.metrics_address))
    # The tasks and the relay change no session state: no reset round trip per job.
    pools = PoolManager(
        postgres=settings.database_url,
        options=PoolOptions(session_reset=False),
        instrumentation=_instrumentation,
    )
    await pools.open()
    relay = NotificationRelay(
        pools.postgres, tasks.notify_created, propagation=context_propagation(_instrumentation)
    )
    await relay.open()
    _relays.append(relay)
    return pools


async def shutdown(pools: PoolManager) -> None:
    """Stop the relay and close the pools once the worker stopped, then the metrics listener."""
    while _relays:
        await _relays.pop().aclose()
    await pools.aclose()
    _serving.close()
