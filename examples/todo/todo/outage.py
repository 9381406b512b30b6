"""Loud once: a side effect that fails while its backend is down is logged per outage.

A committed write's follow-ups (dropping cached reads, enqueueing a notification) fail
while Redis is down, once per request. A traceback per request would bury the one line
that matters under hundreds, so each follow-up logs its first failure as one WARNING
with the cause, counts the rest, and logs one INFO with that count when it works again,
as scalepy's own primitives do for their degraded mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ("OutageLog",)


class OutageLog:
    """The failures of one kind of side effect, logged once per outage.

    Args:
        logger: Where the two lines go.
        what: What fails, for the messages, e.g. `"cache invalidation after a write"`.
    """

    __slots__ = ("_failures", "_logger", "_what")

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._failures = 0

    def failed(self, exc: BaseException, detail: str) -> None:
        """Count a failure; the first of an outage is logged as a WARNING."""
        self._failures += 1
        if self._failures == 1:
            self._logger.warning(
                "%s failed (%s: %s): %s; further failures are counted until it works again",
                self._what,
                type(exc).__name__,
                exc,
                detail,
            )

    def succeeded(self) -> None:
        """End an outage, if there is one, with one INFO saying how many failed."""
        if self._failures:
            failures, self._failures = self._failures, 0
            self._logger.info("%s works again after %d failures", self._what, failures)
