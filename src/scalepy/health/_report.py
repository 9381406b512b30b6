"""Check results, the service's aggregate status, and their IETF health+json bodies.

Pure data and functions: nothing here runs a probe or reads a clock. The body
format is draft-inadarei-api-health-check (media type `application/health+json`):

```json
{"status": "warn", "serviceId": "todo",
 "checks": {"redis:responseTime": [{"componentType": "datastore", "observedValue": 0.4,
            "observedUnit": "ms", "status": "pass", "time": "2026-11-25T10:00:00.000Z"}]}}
```
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalepy.backends._masking import redact
from scalepy.health._check import Check, Observation, Status

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("CheckResult", "HealthReport", "ServiceInfo", "aggregate", "render")

_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}
_MAX_OUTPUT = 1000  # characters of an error message shown in a body


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe of `statuses` (`PASS` when there are none)."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.PASS)


def clean_output(text: str) -> str:
    """`text` with secrets masked, cut to a length a probe body can carry."""
    text = redact(text)
    return text if len(text) <= _MAX_OUTPUT else text[: _MAX_OUTPUT - 3] + "..."


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """What one run of a `Check` found."""

    check: Check
    """The check that ran."""
    status: Status
    """Its own status: the worst of its observations, or `FAIL` if it raised or timed out."""
    observations: tuple[Observation, ...] = ()
    """What the probe returned, in order (empty if it returned nothing or failed)."""
    error: str | None = None
    """Why the probe failed: the exception's class name, or a fixed phrase (the timeout);
    never the exception's text."""
    duration: float = 0.0
    """Seconds the probe ran, up to its timeout."""
    time: float = 0.0
    """When it finished, in seconds since the Unix epoch."""

    @property
    def impact(self) -> Status:
        """What this result does to the service: a non-critical failure only warns."""
        if self.status is Status.FAIL and not self.check.critical:
            return Status.WARN
        return self.status


def aggregate(results: Iterable[CheckResult]) -> Status:
    """The service's status over check results.

    Any critical check failing fails the service; a warning, or a non-critical
    check failing, makes it warn; otherwise (including no checks) it passes.

    Args:
        results: One result per check.

    Returns:
        The aggregate status.
    """
    return worst(result.impact for result in results)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """The answer to one health question (live, ready, started, or the details)."""

    status: Status
    """The service's status."""
    checks: tuple[CheckResult, ...] = ()
    """The check results it was decided on (empty for liveness and startup)."""
    output: str | None = None
    """Why the service is not passing when no check says so: draining, starting, broken."""

    @property
    def http_status(self) -> int:
        """503 for `fail`, 200 for `pass` and `warn`."""
        return 503 if self.status is Status.FAIL else 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """The optional top-level fields of a detailed health+json body."""

    version: str | None = None
    """The public version of the service's API (`version`)."""
    release_id: str | None = None
    """The release of the running code, e.g. a git SHA or image tag (`releaseId`)."""
    service_id: str | None = None
    """A unique identifier of the service (`serviceId`)."""
    description: str | None = None
    """A human-friendly description of the service (`description`)."""

    def fields(self) -> dict[str, str]:
        """The fields that are set, under their health+json names."""
        named = {
            "version": self.version,
            "releaseId": self.release_id,
            "serviceId": self.service_id,
            "description": self.description,
        }
        return {name: value for name, value in named.items() if value is not None}


def rfc3339(timestamp: float) -> str:
    """A Unix timestamp as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T10:00:00.000Z`."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(value: float | int | str | bool | None) -> float | int | str | bool | None:
    """A value JSON can carry: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _entry(result: CheckResult, observation: Observation | None, time: str) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    component_id = observation.component_id if observation is not None else None
    if component_id is not None:
        entry["componentId"] = redact(component_id)
    entry["componentType"] = result.check.component_type
    if observation is not None and observation.value is not None:
        entry["observedValue"] = _value(observation.value)
    if observation is not None and observation.unit is not None:
        entry["observedUnit"] = observation.unit
    entry["status"] = (observation.status if observation is not None else result.status).value
    entry["time"] = time
    output = observation.output if observation is not None else result.error
    if output:
        entry["output"] = clean_output(output)
    return entry


def _checks(results: Iterable[CheckResult]) -> dict[str, list[dict[str, Any]]]:
    checks: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        time = rfc3339(result.time)
        if result.observations:
            for observation in result.observations:
                key = f"{result.check.name}:{observation.measurement}"
                checks.setdefault(key, []).append(_entry(result, observation, time))
        else:
            checks.setdefault(result.check.key, []).append(_entry(result, None, time))
    return checks


def render(report: HealthReport, *, details: bool, service: ServiceInfo | None = None) -> bytes:
    """Encode a report as a health+json body.

    Args:
        report: What to encode.
        details: Whether to include the service fields and every check; a probe
            body carries only `status` (and `output` when the service says why).
        service: The service's top-level fields, for a detailed body.

    Returns:
        Compact UTF-8 JSON.
    """
    body: dict[str, Any] = {"status": report.status.value}
    if details and service is not None:
        body |= service.fields()
    if report.output is not None:
        body["output"] = clean_output(report.output)
    if details:
        body["checks"] = _checks(report.checks)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
