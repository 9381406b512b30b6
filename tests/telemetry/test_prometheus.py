"""PrometheusInstrumentation on injected registries, in one process and across several."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, cast

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from scalepy.errors import ConfigurationError
from scalepy.integrations.prometheus import (
    _MAX_LABEL_SETS,  # how many label sets a recorder remembers, to go past it
    PrometheusInstrumentation,
    exposition_registry,
    render_latest,
)
from scalepy.telemetry import NOOP, Metric, MetricKind
from tests.support.metrics import IN_FLIGHT, LATENCY, REQUESTS, SIZE, WAIT, record_all

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of the test's own, never the global one."""
    return CollectorRegistry()


@pytest.fixture
def instrumentation(registry: CollectorRegistry) -> PrometheusInstrumentation:
    """An instrumentation writing to the test's registry."""
    return PrometheusInstrumentation(registry=registry)


# Metric kinds and names


def _level(unit: str) -> Metric:
    return Metric(name="scalepy.test.level", kind=MetricKind.GAUGE, description="Level.", unit=unit)


@pytest.mark.parametrize(
    ("definition", "records", "sample", "labels", "expected"),
    [
        pytest.param(
            REQUESTS,
            [
                (1, {"route": "/a", "db.system": "redis"}),
                (2, {"route": "/a", "db.system": "redis"}),
            ],
            "scalepy_test_requests_total",
            {"route": "/a", "db_system": "redis"},
            3.0,
            id="counter-gets-total-suffix-and-underscored-labels",
        ),
        pytest.param(
            REQUESTS,
            [(1, {"route": "/a", "user": "u1"})],
            "scalepy_test_requests_total",
            {"route": "/a", "db_system": ""},
            1.0,
            id="missing-label-blank-undeclared-dropped",
        ),
        pytest.param(
            REQUESTS,
            [(4, None)],
            "scalepy_test_requests_total",
            {"route": "", "db_system": ""},
            4.0,
            id="unlabelled-record-blank",
        ),
        pytest.param(
            IN_FLIGHT,
            [(3, None), (-1, None)],
            "scalepy_test_in_flight",
            {},
            2.0,
            id="up-down-counter-is-a-gauge",
        ),
        pytest.param(
            SIZE,
            [(10, {"pool": "a"}), (7, {"pool": "a"})],
            "scalepy_test_size",
            {"pool": "a"},
            7.0,
            id="gauge-is-set",
        ),
        pytest.param(
            WAIT,
            [(0.001, None)],
            "scalepy_test_wait_seconds_bucket",
            {"le": "0.005"},
            1.0,
            id="histogram-default-buckets",
        ),
        pytest.param(
            Metric(
                name="scalepy.test.busy_seconds",
                kind=MetricKind.COUNTER,
                description="B.",
                unit="s",
            ),
            [(2, None)],
            "scalepy_test_busy_seconds_total",
            {},
            2.0,
            id="name-ending-in-unit-not-doubled",
        ),
        *(
            pytest.param(_level(unit), [(1.5, None)], exposed, {}, 1.5, id=f"unit-{unit}")
            for unit, exposed in [
                ("1", "scalepy_test_level_ratio"),  # a dimensionless gauge is a ratio
                ("{connection}", "scalepy_test_level"),
                ("s", "scalepy_test_level_seconds"),
                ("ms", "scalepy_test_level_milliseconds"),
                ("By", "scalepy_test_level_bytes"),
                ("%", "scalepy_test_level_percent"),
                ("m/s", "scalepy_test_level_m_s"),
            ]
        ),
    ],
)
def test_exposed_sample(
    instrumentation: PrometheusInstrumentation,
    registry: CollectorRegistry,
    definition: Metric,
    records: list[tuple[float, Mapping[str, str] | None]],
    sample: str,
    labels: dict[str, str],
    expected: float,
) -> None:
    """Each kind is exposed under its Prometheus name with underscored label keys.

    Counters get `_total` and are incremented, up-down counters are gauges moved
    by signed increments, gauges are set, histograms without buckets use the
    client's defaults. UCUM units map to base-unit suffixes (annotations and `1`
    add none) that a name already ending in one does not repeat. Declared labels
    a record omits are exported as "", undeclared ones are dropped.
    """
    record_all(instrumentation.metric(definition), records)

    assert expected == registry.get_sample_value(sample, labels)


def test_labels_are_read_at_each_recording(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Each value lands on the series of the labels it was recorded with.

    Also when the mapping changed since the last recording, lists its keys in another
    order, or is one of more label sets than a recorder remembers.
    """
    recorder = instrumentation.metric(REQUESTS)
    labels = {"route": "a", "db.system": "redis"}
    recorder.record(1, labels)
    labels["route"] = "b"
    recorder.record(1, labels)
    recorder.record(1, {"db.system": "redis", "route": "b"})
    for number in range(_MAX_LABEL_SETS + 1):
        recorder.record(1, {"route": str(number)})
    recorder.record(1, {"route": "0"})

    def total(route: str, db_system: str = "") -> float | None:
        sample = {"route": route, "db_system": db_system}
        return registry.get_sample_value("scalepy_test_requests_total", sample)

    assert (1, 2, 2, 1) == (total("a", "redis"), total("b", "redis"), total("0"), total("1"))


def test_histogram_with_buckets(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Histograms use the metric's buckets; a seconds unit adds `_seconds`."""
    record_all(instrumentation.metric(LATENCY), [(v, {"route": "/a"}) for v in (0.05, 0.5, 2.0)])

    def sample(suffix: str, **labels: str) -> float | None:
        return registry.get_sample_value(
            f"scalepy_test_latency_seconds{suffix}", {"route": "/a", **labels}
        )

    assert [1.0, 2.0, 3.0, 3.0, 2.55] == [
        sample("_bucket", le="0.1"),
        sample("_bucket", le="1.0"),
        sample("_bucket", le="+Inf"),
        sample("_count"),
        sample("_sum"),
    ]


# Definitions and registration


def test_colliding_prometheus_names_are_rejected(
    instrumentation: PrometheusInstrumentation,
) -> None:
    """Two metric names that map to one Prometheus name raise ConfigurationError."""
    instrumentation.metric(
        Metric(name="scalepy.test.a_b", kind=MetricKind.GAUGE, description="One.")
    )

    with pytest.raises(ConfigurationError, match=r"cannot register metric 'scalepy\.test\.a\.b'"):
        instrumentation.metric(
            Metric(name="scalepy.test.a.b", kind=MetricKind.GAUGE, description="Two.")
        )


def test_second_instrumentation_on_registry_is_rejected(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """A second instrumentation cannot register the same metric on the same registry."""
    instrumentation.metric(REQUESTS)

    with pytest.raises(ConfigurationError, match="share one PrometheusInstrumentation"):
        PrometheusInstrumentation(registry=registry).metric(REQUESTS)


def test_colliding_label_names_are_rejected(instrumentation: PrometheusInstrumentation) -> None:
    """Labels that differ only by dots versus underscores raise ConfigurationError."""
    metric = Metric(
        name="scalepy.test.x", kind=MetricKind.COUNTER, description="X.", labels=("a.b", "a_b")
    )

    with pytest.raises(ConfigurationError, match="collide once dots become underscores"):
        instrumentation.metric(metric)


def test_spans_and_events_are_no_ops(instrumentation: PrometheusInstrumentation) -> None:
    """Prometheus has no spans: span() is the shared no-op and errors pass through."""
    assert NOOP.span("x") is instrumentation.span("scalepy.test.op", {"k": 1})

    with pytest.raises(RuntimeError, match="boom"), instrumentation.span("scalepy.test.op"):
        raise RuntimeError("boom")
    instrumentation.event("scalepy.test.event", {"k": 1})


# Exposition


def test_render_latest_text_format(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """By default the classic text format is rendered with its content type."""
    instrumentation.metric(REQUESTS).record(1, {"route": "/a"})

    body, content_type = render_latest(registry)

    assert "text/plain" == content_type.split(";")[0]
    assert b'scalepy_test_requests_total{db_system="",route="/a"} 1.0\n' in body


def test_render_latest_openmetrics(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """An OpenMetrics Accept header gets OpenMetrics, with units declared."""
    instrumentation.metric(WAIT).record(0.2)

    body, content_type = render_latest(registry, "application/openmetrics-text; version=1.0.0")

    assert "application/openmetrics-text" == content_type.split(";")[0]
    assert b"# UNIT scalepy_test_wait_seconds seconds\n" in body
    assert body.endswith(b"# EOF\n")


def test_render_metrics_renders_the_registry(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """`render_metrics()` (what /metrics serves) is `render_latest` of the exposition registry."""
    instrumentation.metric(WAIT).record(0.2)
    openmetrics = "application/openmetrics-text; version=1.0.0"

    assert render_latest(registry) == instrumentation.render_metrics()
    assert render_latest(registry, openmetrics) == instrumentation.render_metrics(openmetrics)


def test_exposition_registry_single_process(
    monkeypatch: pytest.MonkeyPatch, registry: CollectorRegistry
) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR the given registry is exposed, else a fresh one."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)

    fresh = exposition_registry()

    assert registry is exposition_registry(registry)
    assert (False, b"") == (fresh is registry, render_latest(fresh)[0])


_CHILD = """
import os, sys
from prometheus_client import CollectorRegistry
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.telemetry import Metric, MetricKind

instrumentation = PrometheusInstrumentation(registry=CollectorRegistry())
instrumentation.metric(
    Metric(name="scalepy.test.jobs", kind=MetricKind.COUNTER, description="Jobs run.")
).record(float(sys.argv[1]))
instrumentation.metric(
    Metric(
        name="scalepy.test.workers", kind=MetricKind.GAUGE, description="Up.", unit="{worker}"
    )
).record(1)
print(os.getpid())
"""


def test_multiprocess_values_are_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: CollectorRegistry
) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, counters sum and live gauges sum across processes."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        int(
            subprocess.run(
                [sys.executable, "-c", _CHILD, increment],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for increment in ("2", "3")
    ]
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    merged = exposition_registry(registry)

    assert merged is not registry
    assert (5.0, 2.0) == (
        merged.get_sample_value("scalepy_test_jobs_total"),
        merged.get_sample_value("scalepy_test_workers"),
    )
    # mark_process_dead is unannotated; the cast lets mypy --strict call it.
    cast("Callable[[int], None]", mark_process_dead)(pids[0])
    assert (5.0, 1.0) == (
        merged.get_sample_value("scalepy_test_jobs_total"),
        merged.get_sample_value("scalepy_test_workers"),
    )


def test_one_label_metric_keeps_each_series_apart(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """A metric with a single label: complete, partial and missing labels, each repeated.

    Its values are remembered as one string, those of partial labels as a tuple:
    the two never stand for each other.
    """
    recorder = instrumentation.metric(LATENCY)
    for _ in range(2):
        recorder.record(0.5, {"route": "a"})
        recorder.record(0.5, {"route": "a", "user": "u1"})
        recorder.record(0.5, {"user": "u1"})
        recorder.record(0.5, {})
        recorder.record(0.5, None)
        recorder.record(0.5, {"route": ""})

    def count(route: str) -> float | None:
        return registry.get_sample_value("scalepy_test_latency_seconds_count", {"route": route})

    assert (4, 8) == (count("a"), count(""))
