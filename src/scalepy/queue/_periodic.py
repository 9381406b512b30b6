"""Cron schedules: every worker tries each fire time, and `fire_cron.lua` lets one win."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scalepy.errors import BackendError
from scalepy.queue._store import Batch

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.queue._cron import Cron
    from scalepy.queue._store import QueueStore
    from scalepy.queue._task import Task

__all__ = ("Periodic", "run_schedule")

_logger = logging.getLogger("scalepy.queue")
_LATE = 1.0  # seconds past a fire time after which missed fires are skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class Periodic:
    """A job enqueued on a cron schedule; registered with `Queue.cron`."""

    name: str
    """Identifies the schedule across workers: the same task, schedule and arguments."""
    cron: Cron
    """When it fires."""
    task: Task[..., Any]
    """What it runs."""
    args: bytes
    """The serialized arguments."""


async def run_schedule(
    store: QueueStore, periodic: Periodic, *, on_fired: Callable[[], None]
) -> None:
    """Fire `periodic` at each of its times, until cancelled.

    The wait uses this machine's clock; the script checks the fire time against
    the server's, and says how much longer to wait when this clock runs ahead.
    Jobs get the id `cron-<schedule digest>-<fire time in ms>`, the same on every
    worker.

    Args:
        store: The queue's store.
        periodic: The schedule.
        on_fired: Called each time this worker enqueued the job of a fire.
    """
    digest = hashlib.sha1(periodic.name.encode(), usedforsecurity=False).hexdigest()[:16]
    task = periodic.task
    batch = Batch(task.name, task.priority, task.retries, "", "")
    fire = periodic.cron.next_after(datetime.now(UTC))
    while True:
        fire_ms = round(fire.timestamp() * 1000)
        wait = fire.timestamp() - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            left = await store.fire_cron(
                periodic.name, fire_ms, f"cron-{digest}-{fire_ms}", batch, periodic.args
            )
        except BackendError as exc:
            _logger.warning("could not fire %s: %s", periodic.name, exc)
            await asyncio.sleep(1.0)
            continue
        if left > 0:
            await asyncio.sleep(left / 1000)
            continue
        if left == 0:
            on_fired()
        now = datetime.now(UTC)
        nxt = periodic.cron.next_after(fire)
        fire = nxt if nxt.timestamp() >= now.timestamp() - _LATE else periodic.cron.next_after(now)
