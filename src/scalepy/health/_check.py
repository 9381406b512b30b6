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
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from scalepy._validation import check_finite
from scalepy.errors import ConfigurationError

__all__ = ("Check", "Observation", "ProbeResult", "Status", "flatten_checks")


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
        measurement: What a probe that raised, timed out or returned nothing is
            reported as: the key is `"{name}:{measurement}"`, or just `"{name}"`
            when this is `None`.

    Raises:
        ConfigurationError: An empty name or measurement, a probe that is not
            callable, or a timeout that is not a finite number > 0.
    """

    name: str
    probe: Callable[[], Awaitable[ProbeResult]]
    component_type: str = "component"
    critical: bool = True
    timeout: float = 1.0
    measurement: str | None = None

    def __post_init__(self) -> None:
        name: object = self.name  # checked as given, whatever the annotation says
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a check needs a non-empty name, got {self.name!r}")
        if not callable(self.probe):
            raise ConfigurationError(
                f"check {self.name!r}: probe must be an async function, got {self.probe!r}"
            )
        if self.measurement is not None and not self.measurement:
            raise ConfigurationError(f"check {self.name!r}: measurement must be non-empty or None")
        check_finite(f"check {self.name!r} timeout", self.timeout)

    @property
    def key(self) -> str:
        """The health+json key a result without observations is reported under."""
        return self.name if self.measurement is None else f"{self.name}:{self.measurement}"


def flatten_checks(checks: Iterable[Check | Iterable[Check]]) -> tuple[Check, ...]:
    """Checks given one by one or in groups (`pools.health_checks()`), in order.

    Raises:
        ConfigurationError: Something that is not a check, or two checks with one name.
    """
    given: object = checks  # checked as given, whatever the annotations say
    if isinstance(given, Check | str) or not isinstance(given, Iterable):
        raise ConfigurationError(f"checks must be a list of checks, got {given!r}")
    flat: list[Check] = []
    for item in given:
        group: object = [item] if isinstance(item, Check) else item
        if isinstance(group, str) or not isinstance(group, Iterable):
            raise ConfigurationError(
                f"checks must hold Check objects or lists of them, got {item!r}"
            )
        for check in group:
            if not isinstance(check, Check):
                raise ConfigurationError(f"checks must hold Check objects, got {check!r}")
            flat.append(check)
    names = [check.name for check in flat]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(
            f"two checks are named {twice[0]!r}: give each its own name, or make one check "
            "return an Observation per instance (component_id)"
        )
    return tuple(flat)
