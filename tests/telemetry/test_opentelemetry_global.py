"""OpenTelemetryInstrumentation on the global meter provider, set before or after it is built.

The global provider can be set once per process, so each case runs in a fresh
interpreter with the real SDK and its `InMemoryMetricReader`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_CASE = textwrap.dedent(
    """
    import sys

    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
    from scalepy.telemetry import Metric, MetricKind

    REQUESTS = Metric(name="scalepy.test.requests", kind=MetricKind.COUNTER,
                      description="Requests.", labels=("route",))
    LATENCY = Metric(name="scalepy.test.latency", kind=MetricKind.HISTOGRAM, unit="s",
                     description="Latency.")

    def api_calls(action):
        # Frames of the OpenTelemetry packages that `action` entered.
        calls = []
        def watch(frame, event, arg):
            if event == "call" and "/opentelemetry/" in frame.f_code.co_filename:
                calls.append(frame.f_code.co_name)
        sys.setprofile(watch)
        try:
            action()
        finally:
            sys.setprofile(None)
        return calls

    def record(instrumentation):
        instrumentation.metric(REQUESTS).record(2, {"route": "a", "user": "u1"})
        instrumentation.metric(LATENCY).record(0.5)

    reader = InMemoryMetricReader()
    if sys.argv[1] == "before":
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        instrumentation = OpenTelemetryInstrumentation()
    else:
        instrumentation = OpenTelemetryInstrumentation()
        record(instrumentation)  # dropped: no SDK yet
        assert [] == api_calls(lambda: record(instrumentation)), "the proxy is called"
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    record(instrumentation)
    record(instrumentation)

    found = {
        metric.name: [(dict(point.attributes), getattr(point, "value", None),
                       getattr(point, "count", None)) for point in metric.data.data_points]
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {
        "scalepy.test.requests": [({"route": "a"}, 4, None)],
        "scalepy.test.latency": [({}, None, 2)],
    } == found, found
    """
)


@pytest.mark.parametrize("order", ["before", "after"])
def test_the_global_meter_provider_is_recorded_on_whenever_it_is_set(order: str) -> None:
    """From the moment the SDK is set, every value reaches it, with declared labels only.

    Set before the instrumentation is built, or after (as `opentelemetry-instrument`
    and many apps do). Until it is set, a recording enters none of the OpenTelemetry API's code: the
    values would be dropped anyway.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CASE, order], capture_output=True, text=True, check=False
    )

    assert 0 == done.returncode, done.stderr
