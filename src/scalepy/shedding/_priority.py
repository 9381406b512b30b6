"""`Priority`: the classes a load shedder sheds in order, least important first."""

from __future__ import annotations

import enum

__all__ = ("Priority",)


class Priority(enum.IntEnum):
    """How important a call is; when over the limit, lower classes are shed first.

    Waiting calls are served highest class first, and a call arriving at a full
    line takes the place of a waiting call of a lower class. `CRITICAL` calls
    (health probes, `/metrics`) bypass the limit altogether: never queued, never
    shed, and not counted, so they cannot crowd out the calls they report on.
    """

    LOW = 0
    """Shed first: batch jobs, prefetches, anonymous traffic."""
    NORMAL = 1
    """The default."""
    HIGH = 2
    """Shed last: e.g. checkout, paying tenants."""
    CRITICAL = 3
    """Never shed nor counted: probes and metrics scrapes."""

    @property
    def label(self) -> str:
        """The lowercase name used in metric labels and errors, e.g. `normal`."""
        return self.name.lower()
