"""The instrumentation contract: metric definitions, the no-op default, fan-out, recording."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import sys
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import CollectorRegistry

from scalepy.errors import ConfigurationError
from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.telemetry import (
    NOOP,
    Instrumentation,
    Metric,
    MetricKind,
    NoopInstrumentation,
    combine,
    context_propagation,
    get_default,
    metrics_exposition,
    set_default,
)
from scalepy.testing import RecordingInstrumentation

# The recorded event's class, to compare events whole; scalepy.testing does not export it.
from scalepy.testing._instrumentation import RecordedEvent
from tests.support.calls import scalepy_calls
from tests.support.metrics import (
    CONFLICTING,
    IN_FLIGHT,
    LATENCY,
    REQUESTS,
    SIZE,
    record_all,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from scalepy.telemetry import Recorder

IMPLEMENTATIONS: dict[str, Callable[[], Instrumentation]] = {
    "recording": RecordingInstrumentation,
    "opentelemetry": OpenTelemetryInstrumentation,
    "prometheus": lambda: PrometheusInstrumentation(registry=CollectorRegistry()),
}
"""Every implementation of the protocol (checked by mypy), by name."""


@pytest.fixture(params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> Instrumentation:
    """A fresh instance of each implementation in turn."""
    name: str = request.param
    return IMPLEMENTATIONS[name]()


@pytest.fixture
def restore_default() -> Iterator[None]:
    """Put back the process default instrumentation after the test."""
    previous = get_default()
    yield
    set_default(previous)


# Metric definitions


def test_metric_defaults() -> None:
    """A metric without unit, labels or buckets is dimensionless and unlabelled."""
    metric = Metric(name="scalepy.x", kind=MetricKind.COUNTER, description="X.")

    assert ("1", (), None) == (metric.unit, metric.labels, metric.buckets)


def test_metric_equal_definitions_are_equal_and_hashable() -> None:
    """Definitions are values: equal fields mean equal, hashable metrics."""
    copy = dataclasses.replace(LATENCY)

    assert (False, LATENCY, 1) == (copy is LATENCY, copy, len({LATENCY, copy}))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Scalepy.x"}, "invalid metric name 'Scalepy.x'"),
        ({"name": "scalepy..x"}, "invalid metric name"),
        ({"name": "scalepy.x."}, "invalid metric name"),
        ({"name": "scalepy.1x"}, "invalid metric name"),
        ({"name": "scalepy-x"}, "invalid metric name"),
        ({"name": "s" * 256}, "at most 255 characters"),
        ({"description": "  "}, "non-empty description"),
        ({"unit": ""}, "invalid unit ''"),
        ({"unit": "m s"}, "invalid unit 'm s'"),
        ({"unit": "µs"}, "expected a UCUM unit"),
        ({"labels": ("Route",)}, "invalid label 'Route'"),
        ({"labels": ("route", "route")}, "lists a label twice"),
        ({"buckets": (1.0,)}, "only histograms take buckets"),
        ({"kind": MetricKind.HISTOGRAM, "labels": ("le",)}, "reserved for buckets"),
        ({"kind": MetricKind.HISTOGRAM, "buckets": ()}, "empty buckets"),
        ({"kind": MetricKind.HISTOGRAM, "buckets": (1.0, 1.0)}, "strictly increasing"),
        ({"kind": MetricKind.HISTOGRAM, "buckets": (2.0, 1.0)}, "strictly increasing"),
        ({"kind": MetricKind.HISTOGRAM, "buckets": (1.0, float("inf"))}, "finite numbers"),
        ({"kind": MetricKind.HISTOGRAM, "buckets": (float("nan"),)}, "finite numbers"),
    ],
)
def test_metric_rejects_invalid_fields(fields: dict[str, Any], message: str) -> None:
    """Each invalid field raises ConfigurationError saying what is allowed."""
    arguments: dict[str, Any] = {
        "name": "scalepy.x",
        "kind": MetricKind.COUNTER,
        "description": "X.",
        **fields,
    }

    with pytest.raises(ConfigurationError, match=message):
        Metric(**arguments)


def test_metric_accepts_dotted_labels_and_annotations() -> None:
    """Dotted label keys and UCUM annotations are valid, as in the shared REQUESTS metric."""
    assert ("{request}", ("route", "db.system")) == (REQUESTS.unit, REQUESTS.labels)


# The no-op default


def test_noop_returns_shared_objects() -> None:
    """The no-op hands out one recorder and one span context manager, never new ones."""
    noop = NoopInstrumentation()

    assert noop.metric(REQUESTS) is NOOP.metric(LATENCY)
    assert noop.span("a") is NOOP.span("b", {"k": 1})


def test_noop_span_ignores_everything_and_propagates_errors() -> None:
    """The no-op span accepts every call, is reusable and lets exceptions through."""
    with NOOP.span("scalepy.test.op") as span:
        span.set_attribute("k", "v")
        span.add_event("e", {"k": True})
        span.record_exception(RuntimeError("handled"))
    with pytest.raises(RuntimeError, match="boom"), NOOP.span("scalepy.test.op"):
        raise RuntimeError("boom")

    NOOP.metric(REQUESTS).record(1, {"route": "a"})
    NOOP.event("scalepy.test.event", {"k": 1.5})
    assert "NoopInstrumentation()" == repr(NOOP)


def test_default_is_noop() -> None:
    """Until configured, primitives get the no-op instrumentation."""
    assert NOOP is get_default()


def test_set_default(restore_default: None) -> None:
    """set_default() changes what get_default() returns."""
    recording = RecordingInstrumentation()

    set_default(recording)

    assert recording is get_default()


# combine()


def test_combine_nothing_is_noop() -> None:
    """Combining nothing, or only no-ops, gives the no-op."""
    assert (NOOP, NOOP) == (combine(), combine(NoopInstrumentation(), NOOP))


def test_combine_one_is_itself() -> None:
    """Combining one instrumentation (plus no-ops) returns it unchanged."""
    recording = RecordingInstrumentation()

    assert (recording, recording) == (combine(recording), combine(NOOP, recording))


def test_combine_flattens_nested_combinations() -> None:
    """combine(combine(a, b), c) fans out to a, b and c directly."""
    first, second, third = (RecordingInstrumentation() for _ in range(3))

    combined = combine(combine(first, second), third)

    assert f"combine({first!r}, {second!r}, {third!r})" == repr(combined)


def test_combine_fans_out_metrics() -> None:
    """Every recorded value reaches every member."""
    first, second = RecordingInstrumentation(), RecordingInstrumentation()
    combined: Instrumentation = combine(first, second)

    combined.metric(REQUESTS).record(2, {"route": "a"})

    expected = [("scalepy.test.requests", 2.0, {"route": "a"})]
    assert (expected, expected) == (first.records, second.records)


class _TracingOnly(RecordingInstrumentation):
    """Keeps spans and events but discards metrics, as a tracing-only backend would."""

    def metric(self, metric: Metric) -> Recorder:
        return NOOP.metric(metric)


def test_combine_leaves_out_recorders_that_discard() -> None:
    """A member discarding metrics costs a combined recording nothing: no fan-out in front."""
    recording = RecordingInstrumentation()
    recorder = combine(recording, _TracingOnly()).metric(REQUESTS)

    recorder.record(2, {"route": "a"})

    assert recorder is recording.metric(REQUESTS)
    assert [("scalepy.test.requests", 2.0, {"route": "a"})] == recording.records
    assert NOOP.metric(REQUESTS) is combine(_TracingOnly(), _TracingOnly()).metric(REQUESTS)


@pytest.mark.parametrize(
    ("metric", "labels"),
    [(REQUESTS, {"route": "a", "db.system": "redis"}), (LATENCY, None)],
    ids=["labelled counter", "histogram"],
)
def test_combined_record_runs_one_method_per_backend(
    metric: Metric, labels: Mapping[str, str] | None
) -> None:
    """A recording through Prometheus and OpenTelemetry enters three of scalepy's frames.

    The fan-out and one recorder per backend, nothing more: labels are resolved
    once per label set, not per recording.
    """
    recorder = combine(
        PrometheusInstrumentation(registry=CollectorRegistry()), OpenTelemetryInstrumentation()
    ).metric(metric)
    recorder.record(1, labels)  # the first recording of a label set finds its series

    assert 3 == scalepy_calls(lambda: recorder.record(1, labels))


def test_combine_fans_out_spans_and_events() -> None:
    """Spans, their attributes, events and exceptions reach every member."""
    first, second = RecordingInstrumentation(), RecordingInstrumentation()
    combined = combine(first, second)
    handled = ValueError("handled")

    with combined.span("scalepy.test.op", {"a": 1}) as span:
        span.set_attribute("b", "x")
        span.add_event("added", {"c": True})
        span.record_exception(handled)
        combined.event("sent")

    for member in (first, second):
        (recorded,) = member.spans
        assert {"a": 1, "b": "x"} == recorded.attributes
        assert ["added", "sent"] == [event.name for event in recorded.events]
        assert handled is recorded.exception
        assert [RecordedEvent(name="sent")] == member.events


def test_combine_span_exception_reaches_every_member() -> None:
    """An exception escaping a combined span fails the span of every member."""
    first, second = RecordingInstrumentation(), RecordingInstrumentation()

    with pytest.raises(RuntimeError, match="boom"), combine(first, second).span("op"):
        raise RuntimeError("boom")

    assert [True, True] == [member.spans[0].error for member in (first, second)]


# Optional abilities: context propagation and metrics exposition


def test_abilities_are_found_on_the_instrumentation_or_a_member() -> None:
    """OpenTelemetry propagates, Prometheus renders; combine() exposes its members' abilities."""
    otel = OpenTelemetryInstrumentation()
    prometheus = PrometheusInstrumentation(registry=CollectorRegistry())
    recording = RecordingInstrumentation()

    assert (otel, None) == (context_propagation(otel), metrics_exposition(otel))
    assert (None, prometheus) == (context_propagation(prometheus), metrics_exposition(prometheus))
    assert (None, None) == (context_propagation(recording), metrics_exposition(recording))
    assert (None, None) == (context_propagation(NOOP), metrics_exposition(NOOP))
    combined = combine(recording, prometheus, otel)
    assert (otel, prometheus) == (context_propagation(combined), metrics_exposition(combined))


def test_a_third_party_instrumentation_can_offer_an_ability() -> None:
    """The abilities are protocols: any object with the method qualifies."""

    class Rendering(RecordingInstrumentation):
        def render_metrics(self, accept: str = "") -> tuple[bytes, str]:
            return b"up 1\n", "text/plain"

    rendering = Rendering()
    exposition = metrics_exposition(combine(RecordingInstrumentation(), rendering))
    assert exposition is rendering
    assert (b"up 1\n", "text/plain") == exposition.render_metrics()


# RecordingInstrumentation


@pytest.mark.parametrize(
    ("metric", "records", "wanted", "expected"),
    [
        pytest.param(
            REQUESTS,
            [(1, {"route": "a", "db.system": "redis"}), (2, {"route": "a"}), (4, {"route": "b"})],
            {},
            (7.0, 3),
            id="counter-sums-all",
        ),
        pytest.param(
            REQUESTS,
            [(1, {"route": "a", "db.system": "redis"}), (2, {"route": "a"}), (4, {"route": "b"})],
            {"route": "a"},
            (3.0, 2),
            id="counter-sums-matching-labels",
        ),
        pytest.param(
            REQUESTS,
            [(1, {"route": "a", "db.system": "redis"}), (2, {"route": "a"})],
            {"db.system": "redis"},
            (1.0, 1),
            id="counter-matches-dotted-label",
        ),
        pytest.param(
            REQUESTS,
            [(1, {"route": "a", "db.system": "redis"}), (2, {"route": "a", "db.system": "pg"})],
            {"route": "a", "db.system": "pg"},
            (2.0, 1),
            id="counter-matches-every-label-asked",
        ),
        pytest.param(
            IN_FLIGHT, [(3, None), (-1, None)], {}, (2.0, 2), id="up-down-counter-sums-signed"
        ),
        pytest.param(
            LATENCY,
            [(0.25, {"route": "a"}), (0.5, {"route": "a"})],
            {},
            (0.75, 2),
            id="histogram-sums-observations",
        ),
        pytest.param(
            SIZE,
            [(5, {"pool": "a"}), (7, {"pool": "a"}), (1, {"pool": "b"})],
            {"pool": "a"},
            (7.0, 2),
            id="gauge-keeps-last-matching",
        ),
        pytest.param(SIZE, [(5, {"pool": "a"})], {"pool": "c"}, (0.0, 0), id="gauge-unmatched"),
    ],
)
def test_recording_value_and_count(
    metric: Metric,
    records: list[tuple[float, Mapping[str, str] | None]],
    wanted: dict[str, str],
    expected: tuple[float, int],
) -> None:
    """value() aggregates by kind over the records matching the labels; count() counts them.

    Counters, up-down counters and histograms sum; a gauge keeps its last value,
    0.0 when nothing matches.
    """
    recording = RecordingInstrumentation()

    record_all(recording.metric(metric), records)

    assert expected == (
        recording.value(metric.name, wanted),
        recording.count(metric.name, wanted),
    )
    plain = {key: value for key, value in wanted.items() if "." not in key}
    dotted = {key: value for key, value in wanted.items() if "." in key}
    assert expected == (  # plain keys may also be given as keywords
        recording.value(metric.name, dotted, **plain),
        recording.count(metric.name, dotted, **plain),
    )


def test_recording_keeps_raw_records() -> None:
    """Records keep the metric name, the value as a float and a copy of the labels."""
    recording = RecordingInstrumentation()
    labels = {"route": "a"}

    recording.metric(REQUESTS).record(1, labels)
    recording.metric(IN_FLIGHT).record(1)
    labels["route"] = "changed"

    expected = [("scalepy.test.requests", 1.0, {"route": "a"}), ("scalepy.test.in_flight", 1.0, {})]
    assert expected == recording.records


def test_recording_unknown_metric_raises_key_error() -> None:
    """Asking for a metric that was never defined is a KeyError naming the known ones."""
    recording = RecordingInstrumentation()
    recording.metric(REQUESTS)

    with pytest.raises(KeyError, match=r"no metric 'scalepy\.test\.typo'"):
        recording.value("scalepy.test.typo")
    with pytest.raises(KeyError, match=r"known: \['scalepy\.test\.requests'\]"):
        recording.count("scalepy.test.typo")


def test_recording_lookups_reject_undeclared_labels() -> None:
    """Asking by a label the metric does not declare raises, instead of matching nothing."""
    recording = RecordingInstrumentation()
    recording.metric(REQUESTS).record(1, {"route": "a"})

    with pytest.raises(KeyError, match=r"not \['db_system'\]"):
        recording.value(REQUESTS.name, {"db_system": "redis"})
    with pytest.raises(KeyError, match=r"not \['path'\]"):
        recording.count(REQUESTS.name, path="a")


def test_recording_rejects_undeclared_labels() -> None:
    """Recording a label the metric does not declare raises."""
    recorder = RecordingInstrumentation().metric(REQUESTS)

    with pytest.raises(ConfigurationError, match=r"not \['user'\]"):
        recorder.record(1, {"route": "a", "user": "u1"})


def test_recording_rejects_negative_counter_increment() -> None:
    """Counters only go up."""
    recorder = RecordingInstrumentation().metric(REQUESTS)

    with pytest.raises(ValueError, match="cannot be incremented by -1"):
        recorder.record(-1)


def test_recording_spans_nest_and_record_failures() -> None:
    """Spans end in order with their parent; an escaping Exception marks the span failed."""
    recording = RecordingInstrumentation()
    error = RuntimeError("boom")

    with recording.span("outer", {"k": "v"}) as outer:
        with pytest.raises(RuntimeError), recording.span("inner"):
            raise error
        outer.set_attribute("done", True)

    inner_span, outer_span = recording.spans
    assert ("inner", outer_span, error, True) == (
        inner_span.name,
        inner_span.parent,
        inner_span.exception,
        inner_span.error,
    )
    assert ("outer", None, None, False) == (
        outer_span.name,
        outer_span.parent,
        outer_span.exception,
        outer_span.error,
    )
    assert {"k": "v", "done": True} == outer_span.attributes


def test_recording_span_base_exception_is_not_a_failure() -> None:
    """Like OpenTelemetry, a BaseException such as cancellation ends the span unfailed."""
    recording = RecordingInstrumentation()

    with pytest.raises(asyncio.CancelledError), recording.span("op"):
        raise asyncio.CancelledError

    (span,) = recording.spans
    assert (None, False) == (span.exception, span.error)


def test_recording_events_go_to_current_span() -> None:
    """event() is always kept, and added to the current span when there is one."""
    recording = RecordingInstrumentation()

    recording.event("before")
    with recording.span("op") as span:
        recording.event("during", {"k": 1})
        span.add_event("direct")
    recording.event("after")

    assert ["before", "during", "after"] == [event.name for event in recording.events]
    assert [RecordedEvent(name="during", attributes={"k": 1}), RecordedEvent(name="direct")] == (
        recording.spans[0].events
    )


async def test_recording_current_span_is_per_task() -> None:
    """Concurrent tasks each see their own current span."""
    recording = RecordingInstrumentation()
    both_open = asyncio.Barrier(2)

    async def operation(name: str) -> None:
        with recording.span(name):
            await both_open.wait()
            recording.event(f"{name}.event")

    await asyncio.gather(operation("a"), operation("b"))

    assert {"a": ["a.event"], "b": ["b.event"]} == {
        span.name: [event.name for event in span.events] for span in recording.spans
    }


def test_recording_instances_do_not_share_current_span() -> None:
    """A span of one recording instrumentation is not current for another."""
    first, second = RecordingInstrumentation(), RecordingInstrumentation()

    with first.span("op"):
        second.event("elsewhere")

    assert [] == first.spans[0].events


def test_recording_clear_keeps_definitions() -> None:
    """clear() forgets what was recorded but keeps metric definitions."""
    recording = RecordingInstrumentation()
    recording.metric(REQUESTS).record(1)
    with recording.span("op"):
        recording.event("e")

    recording.clear()

    assert ([], [], [], 0.0) == (
        recording.records,
        recording.spans,
        recording.events,
        recording.value(REQUESTS.name),
    )


def test_recording_repr_shows_counts() -> None:
    """The repr shows how much was recorded."""
    recording = RecordingInstrumentation()
    recording.metric(REQUESTS).record(1)

    assert "RecordingInstrumentation(metrics=1, records=1, spans=0, events=0)" == repr(recording)


# Every implementation


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("recording", "RecordingInstrumentation(metrics=1, records=0, spans=0, events=0)"),
        ("opentelemetry", "OpenTelemetryInstrumentation(metrics=1)"),
        ("prometheus", "PrometheusInstrumentation(metrics=1)"),
    ],
)
def test_implementation_repr_counts_metrics(name: str, shown: str) -> None:
    """Each implementation's repr counts metric names, not metric() calls."""
    instrumentation = IMPLEMENTATIONS[name]()

    instrumentation.metric(REQUESTS)
    instrumentation.metric(REQUESTS)

    assert shown == repr(instrumentation)


def test_implementation_same_definition_same_recorder(implementation: Instrumentation) -> None:
    """Asking again with an equal definition returns the same recorder."""
    first = implementation.metric(REQUESTS)

    assert first is implementation.metric(dataclasses.replace(REQUESTS))


def test_implementation_rejects_conflicting_definition(implementation: Instrumentation) -> None:
    """A second, different definition under a known name raises; the first one stays."""
    recorder = implementation.metric(REQUESTS)

    with pytest.raises(ConfigurationError, match="already defined"):
        implementation.metric(CONFLICTING)
    assert recorder is implementation.metric(REQUESTS)


@pytest.mark.parametrize(
    ("module_name", "dependency", "extra"),
    [
        ("scalepy.integrations.opentelemetry", "opentelemetry", "otel"),
        ("scalepy.integrations.prometheus", "prometheus_client", "prometheus"),
    ],
)
def test_integration_without_its_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, module_name: str, dependency: str, extra: str
) -> None:
    """Without its dependency, importing an integration says which extra to install."""
    monkeypatch.setitem(sys.modules, dependency, None)
    monkeypatch.delitem(sys.modules, module_name)

    with pytest.raises(ImportError, match=rf"pip install 'scalepy-toolkit\[{extra}\]'") as caught:
        importlib.import_module(module_name)

    assert isinstance(caught.value.__cause__, ImportError)
