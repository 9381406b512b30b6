"""PrometheusInstrumentation on injected registries, in one process and across several."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import TYPE_CHECKING, cast

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from scalepy.errors import ConfigurationError
from scalepy.integrations.prometheus import (
    PrometheusInstrumentation,
    exposition_registry,
    render_latest,
)
from scalepy.telemetry import NOOP, Instrumentation, Metric, MetricKind

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

REQUESTS = Metric(
    name="scalepy.test.requests",
    kind=MetricKind.COUNTER,
    description="Requests handled.",
    unit="{request}",
    labels=("route", "db.system"),
)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of the test's own, never the global one."""
    return CollectorRegistry()


@pytest.fixture
def instrumentation(registry: CollectorRegistry) -> PrometheusInstrumentation:
    """An instrumentation writing to the test's registry."""
    return PrometheusInstrumentation(registry=registry)


def test_satisfies_the_protocol(instrumentation: PrometheusInstrumentation) -> None:
    """The class is an Instrumentation (checked by mypy) and shows its metric count."""
    checked: Instrumentation = instrumentation

    checked.metric(REQUESTS)

    assert "PrometheusInstrumentation(metrics=1)" == repr(instrumentation)


# Metric kinds and names


def test_counter_gets_total_suffix_and_underscored_labels(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Counters are exposed as `<name>_total` with dots in names and labels underscored."""
    requests = instrumentation.metric(REQUESTS)

    requests.record(1, {"route": "/a", "db.system": "redis"})
    requests.record(2, {"route": "/a", "db.system": "redis"})

    assert 3.0 == registry.get_sample_value(
        "scalepy_test_requests_total", {"route": "/a", "db_system": "redis"}
    )


def test_missing_labels_are_blank_and_undeclared_dropped(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Declared labels a record omits are exported as "", undeclared ones are dropped."""
    requests = instrumentation.metric(REQUESTS)

    requests.record(1, {"route": "/a", "user": "u1"})
    requests.record(4)

    assert (1.0, 4.0) == (
        registry.get_sample_value("scalepy_test_requests_total", {"route": "/a", "db_system": ""}),
        registry.get_sample_value("scalepy_test_requests_total", {"route": "", "db_system": ""}),
    )


def test_up_down_counter_is_a_gauge(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Up-down counters are gauges moved by signed increments."""
    in_flight = instrumentation.metric(
        Metric(name="scalepy.test.in_flight", kind=MetricKind.UP_DOWN_COUNTER, description="Open.")
    )

    in_flight.record(3)
    in_flight.record(-1)

    assert 2.0 == registry.get_sample_value("scalepy_test_in_flight")


def test_gauge_is_set(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Gauges take the last value; a byte unit adds `_bytes`."""
    memory = instrumentation.metric(
        Metric(
            name="scalepy.test.memory",
            kind=MetricKind.GAUGE,
            description="Memory held.",
            unit="By",
            labels=("pool",),
        )
    )

    memory.record(10, {"pool": "a"})
    memory.record(7, {"pool": "a"})

    assert 7.0 == registry.get_sample_value("scalepy_test_memory_bytes", {"pool": "a"})


def test_histogram_with_buckets(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Histograms use the metric's buckets; a seconds unit adds `_seconds`."""
    latency = instrumentation.metric(
        Metric(
            name="scalepy.test.latency",
            kind=MetricKind.HISTOGRAM,
            description="Request duration.",
            unit="s",
            labels=("route",),
            buckets=(0.1, 1.0),
        )
    )

    for value in (0.05, 0.5, 2.0):
        latency.record(value, {"route": "/a"})

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


def test_histogram_default_buckets(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """Without buckets a histogram uses the client's default boundaries."""
    instrumentation.metric(
        Metric(name="scalepy.test.wait", kind=MetricKind.HISTOGRAM, description="Wait.", unit="s")
    ).record(0.001)

    assert 1.0 == registry.get_sample_value("scalepy_test_wait_seconds_bucket", {"le": "0.005"})


@pytest.mark.parametrize(
    ("unit", "exposed"),
    [
        ("1", "scalepy_test_level"),
        ("{connection}", "scalepy_test_level"),
        ("s", "scalepy_test_level_seconds"),
        ("ms", "scalepy_test_level_milliseconds"),
        ("By", "scalepy_test_level_bytes"),
        ("%", "scalepy_test_level_percent"),
        ("m/s", "scalepy_test_level_m_s"),
    ],
)
def test_unit_suffixes(registry: CollectorRegistry, unit: str, exposed: str) -> None:
    """UCUM units map to Prometheus base-unit suffixes; annotations and `1` add none."""
    PrometheusInstrumentation(registry=registry).metric(
        Metric(name="scalepy.test.level", kind=MetricKind.GAUGE, description="Level.", unit=unit)
    ).record(1.5)

    assert 1.5 == registry.get_sample_value(exposed)


def test_name_already_ending_in_unit_is_not_doubled(
    instrumentation: PrometheusInstrumentation, registry: CollectorRegistry
) -> None:
    """A name that already ends with its unit suffix keeps a single suffix."""
    instrumentation.metric(
        Metric(
            name="scalepy.test.busy_seconds", kind=MetricKind.COUNTER, description="B.", unit="s"
        )
    ).record(2)

    assert 2.0 == registry.get_sample_value("scalepy_test_busy_seconds_total")


# Definitions and registration


def test_same_definition_same_recorder(instrumentation: PrometheusInstrumentation) -> None:
    """Asking twice for an equal definition returns the same recorder."""
    assert instrumentation.metric(REQUESTS) is instrumentation.metric(REQUESTS)


def test_conflicting_definition_is_rejected(instrumentation: PrometheusInstrumentation) -> None:
    """A different definition under a known name raises ConfigurationError."""
    instrumentation.metric(REQUESTS)
    conflicting = Metric(name=REQUESTS.name, kind=MetricKind.GAUGE, description="Other.")

    with pytest.raises(ConfigurationError, match="already defined"):
        instrumentation.metric(conflicting)


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
    instrumentation.metric(
        Metric(name="scalepy.test.wait", kind=MetricKind.HISTOGRAM, description="Wait.", unit="s")
    ).record(0.2)

    body, content_type = render_latest(registry, "application/openmetrics-text; version=1.0.0")

    assert "application/openmetrics-text" == content_type.split(";")[0]
    assert b"# UNIT scalepy_test_wait_seconds seconds\n" in body
    assert body.endswith(b"# EOF\n")


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
    Metric(name="scalepy.test.workers", kind=MetricKind.GAUGE, description="Workers up.")
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


def test_missing_extra_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus-client, importing the integration says which extra to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "scalepy.integrations.prometheus")

    with pytest.raises(ImportError, match=r"pip install 'scalepy\[prometheus\]'") as caught:
        importlib.import_module("scalepy.integrations.prometheus")

    assert isinstance(caught.value.__cause__, ImportError)
