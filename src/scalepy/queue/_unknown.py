"""`UnknownTasks`: what a worker does with a job of a task it does not have.

During a rolling deploy, producers on the new code enqueue jobs of a new task
before every worker has it. A worker on the old code must not burn such a job's
retries: it puts the job back (outcome `u` of `ack.lua`), due `delay` seconds
later and the attempt not counted, for a worker that has the task to claim.
Past `limit` put-backs the job is dead-lettered with the reason: no deployed
worker has the task (a typo, a task removed, a deploy that never finished).
Each task name is logged once per worker.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalepy.queue._store import Claimed, Settlement

__all__ = ("UnknownTasks",)

_logger = logging.getLogger("scalepy.queue")
_MAX_LOGGED = 1000  # task names remembered as logged; past it, the memory starts over


class UnknownTasks:
    """Puts back the jobs of tasks a worker does not have, and logs each task once.

    Args:
        queue: The queue's name, for the log.
        delay: Seconds before a put-back job is due again.
        limit: Put-backs after which the job is dead-lettered instead.
    """

    __slots__ = ("_delay_ms", "_logged", "delay", "limit", "queue")

    def __init__(self, queue: str, *, delay: float, limit: int) -> None:
        self.queue = queue
        self.delay = delay
        self.limit = limit
        self._delay_ms = round(delay * 1000)
        self._logged: set[str] = set()

    def put_back(self, claimed: Claimed) -> Settlement:
        """Return the settlement putting `claimed` back (or burying it, past the limit)."""
        if claimed.task not in self._logged:
            if len(self._logged) >= _MAX_LOGGED:
                self._logged.clear()
            self._logged.add(claimed.task)
            _logger.warning(
                "no task %r on queue %r in this worker: its jobs are put back for a worker "
                "that has it, %g s at a time, up to %d times (a rolling deploy?)",
                claimed.task,
                self.queue,
                self.delay,
                self.limit,
            )
        reason = (
            f"LookupError: no worker that claimed the job has task {claimed.task!r} "
            f"(put back {self.limit} times, {self.delay:g} s apart)"
        )
        return (claimed.id, claimed.token, "u", reason, self._delay_ms)
