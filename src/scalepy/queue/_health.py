"""`queue_check`: a queue's depth as a `scalepy.health` readiness check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy.health import Check, Observation, Status

if TYPE_CHECKING:
    from scalepy.queue._queue import Queue

__all__ = ("queue_check",)


def queue_check(
    queue: Queue, *, name: str | None, critical: bool, timeout: float, warn_queued: int | None
) -> Check:
    """Build the check `Queue.health_check` describes."""

    async def probe() -> list[Observation]:
        stats = await queue.stats()
        backlog = warn_queued is not None and stats.queued > warn_queued
        return [
            Observation(
                measurement="queued",
                value=stats.queued,
                unit="jobs",
                status=Status.WARN if backlog else Status.PASS,
                output=f"more than {warn_queued} jobs queued" if backlog else None,
            ),
            Observation(measurement="dead", value=stats.dead, unit="jobs"),
        ]

    return Check(
        name=name or f"queue:{queue.name}",
        probe=probe,
        critical=critical,
        timeout=timeout,
        measurement="queued",
    )
