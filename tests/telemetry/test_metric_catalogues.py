"""Every metric scalepy defines sits in its primitive's catalogue and follows the one naming rule.

The rule (OpenTelemetry semantic-convention style, see docs/telemetry.md):
- names are `<namespace>.<thing>`, the namespace being the catalogue's `scalepy.<primitive>`,
  lowercase snake_case segments, with no unit or `total` in them;
- units are UCUM: `s`, `By`, a singular `{annotation}` for counts, `1` only for ratios (gauges);
- attribute keys live under the namespace too, except the registry's shared `error.type`;
- the Prometheus adapter maps them mechanically: `scalepy_<primitive>_<thing>[_<unit>]`,
  counters ending `_total`.
A new metric that breaks the rule, or that is defined outside a catalogue, fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from prometheus_client import CollectorRegistry

import scalepy
from scalepy.integrations.prometheus import PrometheusInstrumentation, prometheus_name
from scalepy.telemetry import ERROR_TYPE, Metric, MetricKind
from tests.support.metrics import CATALOGUES, REFERENCE_PAGE, catalogue, render_reference

SEGMENT = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
ANNOTATION = re.compile(r"\{[a-z]+(?:_[a-z]+)*\}")
SHARED_ATTRIBUTES = frozenset({ERROR_TYPE})
UNIT_WORDS = frozenset({"seconds", "milliseconds", "ms", "bytes", "total", "ratio", "percent"})
PROMETHEUS_UNITS = {"s": "_seconds", "By": "_bytes"}

CATALOGUED = [
    (namespace, metric)
    for namespace, metrics in map(catalogue, CATALOGUES.values())
    for metric in metrics
]
ALL = [pytest.param(namespace, metric, id=metric.name) for namespace, metric in CATALOGUED]


def _segments(name: str, namespace: str) -> list[str]:
    assert name.startswith(f"{namespace}."), f"{name!r} is not under {namespace!r}"
    return name.removeprefix(f"{namespace}.").split(".")


@pytest.mark.parametrize("namespace", sorted({ns for ns, _ in map(catalogue, CATALOGUES.values())}))
def test_namespace_is_scalepy_and_one_word(namespace: str) -> None:
    """`scalepy.<primitive>`, singular as OpenTelemetry asks of namespaces."""
    assert re.fullmatch(r"scalepy\.[a-z]+", namespace)
    assert not namespace.endswith("s") or namespace == "scalepy.redis"


@pytest.mark.parametrize(("namespace", "metric"), ALL)
def test_name(namespace: str, metric: Metric) -> None:
    """Dotted snake_case under the namespace, with the unit kept out of the name."""
    segments = _segments(metric.name, namespace)
    assert all(SEGMENT.fullmatch(segment) for segment in segments), metric.name
    words = {word for segment in segments for word in segment.split("_")}
    assert not words & UNIT_WORDS, f"{metric.name!r}: the unit belongs in Metric.unit"


@pytest.mark.parametrize(("namespace", "metric"), ALL)
def test_unit(namespace: str, metric: Metric) -> None:
    """UCUM: seconds, bytes, a singular annotation for counts, `1` for ratios only."""
    if metric.unit == "1":
        assert metric.kind is MetricKind.GAUGE, f"{metric.name!r}: `1` is for ratios"
    elif metric.unit not in PROMETHEUS_UNITS:
        assert ANNOTATION.fullmatch(metric.unit), f"{metric.name!r}: unit {metric.unit!r}"
    if metric.unit == "s" and metric.kind is MetricKind.HISTOGRAM:
        last = metric.name.rsplit(".", 1)[-1]
        assert last == "duration" or last.endswith("_time"), f"{metric.name!r} times something"


@pytest.mark.parametrize(("namespace", "metric"), ALL)
def test_attributes(namespace: str, metric: Metric) -> None:
    """Attribute keys live under the namespace, or are OpenTelemetry's shared `error.type`."""
    for label in metric.labels:
        if label not in SHARED_ATTRIBUTES:
            assert all(SEGMENT.fullmatch(s) for s in _segments(label, namespace)), label


@pytest.mark.parametrize(("namespace", "metric"), ALL)
def test_description_is_a_sentence(namespace: str, metric: Metric) -> None:
    """The description is the help text: one sentence."""
    assert not metric.description[0].islower(), metric.name
    assert metric.description.endswith("."), metric.name


@pytest.mark.parametrize(("namespace", "metric"), ALL)
def test_prometheus_name_is_mechanical(namespace: str, metric: Metric) -> None:
    """`scalepy_<primitive>_<thing>`, then the unit as a word, then `_total` for counters."""
    expected = metric.name.replace(".", "_") + PROMETHEUS_UNITS.get(metric.unit, "")
    if metric.unit == "1":
        expected += "_ratio"
    if metric.kind is MetricKind.COUNTER:
        expected += "_total"
    assert expected == prometheus_name(metric)


def test_names_are_unique_and_register_together() -> None:
    """No two catalogues share a name, and one registry takes every metric as named."""
    metrics = [metric for _, metric in CATALOGUED]
    assert len({m.name for m in metrics}) == len(metrics)
    registry = CollectorRegistry()
    instrumentation = PrometheusInstrumentation(registry=registry)
    for metric in metrics:
        instrumentation.metric(metric).record(1, dict.fromkeys(metric.labels, "x"))
    families = {family.name for family in registry.collect()}
    # prometheus_client names a counter's family without `_total`; its sample has it.
    assert families == {prometheus_name(m).removesuffix("_total") for m in metrics}
    samples = {s.name for family in registry.collect() for s in family.samples}
    suffix = {MetricKind.HISTOGRAM: "_count"}  # a histogram's series are _bucket, _sum, _count
    assert {prometheus_name(m) + suffix.get(m.kind, "") for m in metrics} <= samples


def _every_module() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(scalepy.__path__, "scalepy.")
        if not info.name.endswith("__main__")
    ]


def test_every_metric_is_in_a_catalogue() -> None:
    """A `Metric` defined anywhere in scalepy is one of a catalogue's `METRICS`."""
    catalogued = {
        metric for _, metrics in map(catalogue, CATALOGUES.values()) for metric in metrics
    }
    defined = {
        (name, value)
        for name in _every_module()
        for value in vars(importlib.import_module(name)).values()
        if isinstance(value, Metric)
    }
    assert [] == [(module, m.name) for module, m in sorted(defined, key=str) if m not in catalogued]
    assert catalogued == {metric for _, metric in defined}


def test_the_reference_page_is_generated_from_the_catalogues() -> None:
    """docs/telemetry.md lists exactly the catalogues.

    Regenerate its tables with `python -m tests.support.metrics`.
    """
    assert render_reference() in REFERENCE_PAGE.read_text()
