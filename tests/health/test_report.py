"""Aggregation of check results and their health+json encoding."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.health import Check, CheckResult, HealthReport, Observation, Status

# The pure aggregation and rendering functions, tested directly.
from scalepy.health._report import ServiceInfo, aggregate, render, rfc3339
from tests.health.schema import validate_health_json

NOON = 1_764_072_000.0  # 2025-11-25T12:00:00Z


async def nothing() -> None:
    """A probe that passes."""


def result(
    name: str = "db",
    status: Status = Status.PASS,
    *,
    critical: bool = True,
    observations: tuple[Observation, ...] = (),
    error: str | None = None,
    measurement: str | None = None,
) -> CheckResult:
    """A result of a check named `name`."""
    check = Check(
        name=name,
        probe=nothing,
        critical=critical,
        component_type="datastore",
        measurement=measurement,
    )
    return CheckResult(
        check=check, status=status, observations=observations, error=error, time=NOON
    )


def reference(results: list[tuple[Status, bool]]) -> Status:
    """The draft's rule spelled out: critical failure fails; any other problem warns."""
    if any(status is Status.FAIL and critical for status, critical in results):
        return Status.FAIL
    if any(status is not Status.PASS for status, _ in results):
        return Status.WARN
    return Status.PASS


@given(st.lists(st.tuples(st.sampled_from(Status), st.booleans()), max_size=6))
def test_aggregate_matches_the_rule(results: list[tuple[Status, bool]]) -> None:
    """aggregate() fails on a critical failure, warns on any other problem, else passes."""
    built = [
        result(f"c{i}", status, critical=critical) for i, (status, critical) in enumerate(results)
    ]

    assert reference(results) == aggregate(built)


def test_http_status() -> None:
    """A failing report answers 503; passing and warning ones answer 200."""
    assert [200, 200, 503] == [HealthReport(status=status).http_status for status in Status]


def test_probe_body_has_status_and_output_only() -> None:
    """A probe body never carries checks or service fields."""
    report = HealthReport(
        status=Status.FAIL, checks=(result(status=Status.FAIL),), output="draining"
    )

    body = render(report, details=False, service=ServiceInfo(service_id="todo"))

    assert {"status": "fail", "output": "draining"} == validate_health_json(body, details=False)


def test_detailed_body() -> None:
    """Details carry the service fields and one entry per observation, keyed name:measurement."""
    observations = (
        Observation(measurement="responseTime", value=1.25, unit="ms", component_id="primary"),
        Observation(measurement="responseTime", value=2.5, unit="ms", component_id="replica-1"),
        Observation(
            measurement="utilization",
            value=95.0,
            unit="percent",
            status=Status.WARN,
            output="19 of 20 connections in use",
        ),
    )
    report = HealthReport(
        status=Status.WARN,
        checks=(result(status=Status.WARN, observations=observations), result("cache")),
    )
    service = ServiceInfo(version="1", release_id="1.2.3", service_id="todo", description="Todo")

    body = validate_health_json(render(report, details=True, service=service), details=True)

    assert {
        "status": "warn",
        "version": "1",
        "releaseId": "1.2.3",
        "serviceId": "todo",
        "description": "Todo",
        "checks": {
            "db:responseTime": [
                {
                    "componentId": "primary",
                    "componentType": "datastore",
                    "observedValue": 1.25,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": "2025-11-25T12:00:00.000Z",
                },
                {
                    "componentId": "replica-1",
                    "componentType": "datastore",
                    "observedValue": 2.5,
                    "observedUnit": "ms",
                    "status": "pass",
                    "time": "2025-11-25T12:00:00.000Z",
                },
            ],
            "db:utilization": [
                {
                    "componentType": "datastore",
                    "observedValue": 95.0,
                    "observedUnit": "percent",
                    "status": "warn",
                    "time": "2025-11-25T12:00:00.000Z",
                    "output": "19 of 20 connections in use",
                }
            ],
            "cache": [
                {
                    "componentType": "datastore",
                    "status": "pass",
                    "time": "2025-11-25T12:00:00.000Z",
                }
            ],
        },
    } == body


def test_failed_check_is_keyed_by_its_measurement_and_shows_the_error() -> None:
    """A failed check without observations appears under name:measurement with its error."""
    report = HealthReport(
        status=Status.FAIL,
        checks=(
            result(status=Status.FAIL, error="timed out after 1 s", measurement="responseTime"),
        ),
    )

    body = validate_health_json(render(report, details=True), details=True)

    assert {"db:responseTime"} == set(body["checks"])
    entry = body["checks"]["db:responseTime"][0]
    assert ("fail", "timed out after 1 s") == (entry["status"], entry["output"])
    assert "observedValue" not in entry


def test_secrets_are_masked_everywhere() -> None:
    """Outputs and component ids never show passwords."""
    observation = Observation(
        measurement="responseTime",
        status=Status.FAIL,
        output="could not reach redis://:s3cret@cache:6379/0",
        component_id="postgresql://app:hunter2@db/app",
    )
    report = HealthReport(
        status=Status.FAIL,
        checks=(result(status=Status.FAIL, observations=(observation,)),),
        output="broken: password=hunter2",
    )

    body = render(report, details=True)

    assert b"s3cret" not in body
    assert b"hunter2" not in body
    document = json.loads(body)
    entry = document["checks"]["db:responseTime"][0]
    assert "postgresql://app:***@db/app" == entry["componentId"]
    assert "broken: password=***" == document["output"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_become_null(value: float) -> None:
    """NaN and infinities, which JSON cannot carry, are sent as null."""
    observation = Observation(measurement="lag", value=value)
    report = HealthReport(status=Status.PASS, checks=(result(observations=(observation,)),))

    body = validate_health_json(render(report, details=True), details=True)

    assert body["checks"]["db:lag"][0]["observedValue"] is None


def test_long_output_is_cut() -> None:
    """An error message is cut to 1000 characters."""
    report = HealthReport(
        status=Status.FAIL, checks=(result(status=Status.FAIL, error="x" * 5000),)
    )

    entry = json.loads(render(report, details=True))["checks"]["db"][0]

    assert 1000 == len(entry["output"])
    assert entry["output"].endswith("...")


def test_rfc3339() -> None:
    """Timestamps are UTC with milliseconds and a Z."""
    assert "2025-11-25T12:00:00.250Z" == rfc3339(NOON + 0.25)


def test_unicode_is_kept() -> None:
    """Non-ASCII output is sent as UTF-8, not escaped."""
    report = HealthReport(status=Status.FAIL, output="base de données indisponible")

    assert "données".encode() in render(report, details=False)
