"""What a readiness check is: a named probe with a timeout, and what it observed.

A `Check` wraps an async probe. The probe returns nothing (pass), one
`Observation`, or several (one per measurement, e.g. a pool's round trip and its
utilisation), and raises to fail. `Health` runs every check concurrently, each
bounded by its own `timeout`, and reports each observation under the IETF
health+json key `"{check.name}:{observation.measurement}"`. A failing check that
is not `critical` makes the service `warn` instead of `fail`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ("Check", "Observation", "ProbeResult", "Status")


class Status(enum.Enum):
    """A health status, as the IETF health+json draft spells it."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One measurement a probe made.

    Attributes:
        measurement: What was measured, e.g. `"responseTime"`, `"utilization"`,
            `"connections"`; with the check's name it forms the health+json key.
        value: The observed value (`observedValue`), if any.
        unit: Its unit (`observedUnit`), e.g. `"ms"`, `"percent"`.
        status: The status this observation warrants on its own.
        output: A short human-readable explanation, shown on warn or fail.
        component_id: Which instance of the component (`componentId`), e.g. a
            replica's host, when a check observes several.
    """

    measurement: str
    value: float | int | str | bool | None = None
    unit: str | None = None
    status: Status = Status.PASS
    output: str | None = None
    component_id: str | None = None


ProbeResult = Observation | Sequence[Observation] | None
"""What a probe returns: nothing (a pass), one observation, or several."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """A named dependency check run by readiness probes.

    Attributes:
        name: The component's name, e.g. `"postgres"`; the first half of each key.
        probe: The async function that checks the dependency.
        component_type: The health+json `componentType`, e.g. `"datastore"`,
            `"system"`, `"component"`.
        critical: Whether a failure fails readiness (`True`) or only warns.
        timeout: Seconds the probe may take before it counts as failed.
    """

    name: str
    probe: Callable[[], Awaitable[ProbeResult]]
    component_type: str = "component"
    critical: bool = True
    timeout: float = 1.0
