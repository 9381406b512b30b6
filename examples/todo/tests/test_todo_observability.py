"""The dashboard and the alert rules query only metrics and labels something emits.

A panel or an alert that names a metric nobody exports shows "No data" or never fires,
silently. These tests read every PromQL expression of `deploy/observability/`
(the dashboard's targets, the alert rules) and compare the metric names and the
label names of their selectors with what is emitted: scalepy's catalogues
(`tests.support.metrics.CATALOGUES`) plus the app's own (`todo.metrics.METRICS`),
under their Prometheus names.

The tokenizer is deliberately small, enough for the expressions we write:

1. drop string literals (`"..."`: label values, regexes) and `[...]` (ranges);
2. drop grouping clauses, `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`,
   `group_left (...)`, `group_right (...)`: their contents are label names;
   `group_left`/`group_right` may also stand alone, so they count as keywords;
3. take each `name{labels}` selector, and every other identifier that is not a
   function (followed by `(`), a keyword, a number or a Grafana `$variable`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest
from tests.support.metrics import CATALOGUES, catalogue

from scalepy.integrations.prometheus import prometheus_name
from scalepy.telemetry import Metric, MetricKind
from todo.metrics import METRICS as APP_METRICS

OBSERVABILITY = Path(__file__).resolve().parents[1] / "deploy" / "observability"
OPERATIONS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "operations.md"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_IDENTIFIER = re.compile(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset(
    ("and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right")
)
_TARGET_LABELS = frozenset(("job", "instance", "namespace", "__name__"))
"""Labels Prometheus (or the scrape configs' relabelling) attaches to every series."""


def references(expr: str) -> list[tuple[str, frozenset[str]]]:
    """The metrics an expression reads, each with the label names its selector matches on."""
    text = _RANGE.sub(" ", _STRING.sub('""', expr))
    text = _GROUPING.sub(" ", text)
    found: list[tuple[str, frozenset[str]]] = []
    for match in _SELECTOR.finditer(text):
        labels = frozenset(_MATCHER_LABEL.findall(match[2]))
        found.append((match[1] or "", labels))
    rest = _SELECTOR.sub(" ", text)
    found += [
        (name, frozenset()) for name in _IDENTIFIER.findall(rest) if name.lower() not in _KEYWORDS
    ]
    return found


def _series(metric: Metric) -> dict[str, frozenset[str]]:
    """The series names one metric is exposed under, with its label names."""
    name = prometheus_name(metric)
    labels = frozenset(key.replace(".", "_") for key in metric.labels)
    if metric.kind is MetricKind.HISTOGRAM:
        return {
            f"{name}_bucket": labels | {"le"},
            f"{name}_sum": labels,
            f"{name}_count": labels,
        }
    return {name: labels}


def emitted() -> dict[str, frozenset[str]]:
    """Every series name scalepy and the app export, with the label names each has."""
    metrics = [metric for module in CATALOGUES.values() for metric in catalogue(module)[1]]
    series: dict[str, frozenset[str]] = {}
    for metric in [*metrics, *APP_METRICS]:
        series.update(_series(metric))
    return series


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) for every target of the dashboard."""
    document = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        for target in panel.get("targets", ())
    ]


def alert_rules() -> list[dict[str, object]]:
    """The rules of alerts.yml."""
    document = msgspec.yaml.decode((OBSERVABILITY / "alerts.yml").read_bytes())
    return [rule for group in document["groups"] for rule in group["rules"]]


def unknown(expr: str) -> list[str]:
    """What an expression queries that nothing emits: metric names, or labels they lack."""
    series = emitted()
    problems = []
    for name, labels in references(expr):
        if not name:
            problems.append("a selector without a metric name")
        elif name not in series:
            problems.append(f"metric {name}")
        else:
            problems += [
                f"label {label} of {name}"
                for label in sorted(labels - series[name] - _TARGET_LABELS)
            ]
    return problems


@pytest.mark.parametrize(("title", "expr"), dashboard_expressions())
def test_every_dashboard_panel_queries_emitted_metrics(title: str, expr: str) -> None:
    """Each target names at least one metric, and only metrics and labels that exist."""
    assert references(expr), f"{title}: no metric found in {expr}"
    assert [] == unknown(expr), f"panel {title!r}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_queries_emitted_metrics_and_has_a_runbook(rule: dict[str, object]) -> None:
    """The expression's metrics exist; severity, for:, annotations and runbook are there."""
    expr = str(rule["expr"])
    assert references(expr)
    assert [] == unknown(expr), f"alert {rule['alert']}"
    assert "for" in rule
    labels, annotations = rule["labels"], rule["annotations"]
    assert isinstance(labels, dict)
    assert isinstance(annotations, dict)
    assert labels["severity"] in ("page", "ticket")
    assert {"summary", "description", "runbook"} <= annotations.keys()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_runbook_points_at_a_section_of_the_operations_page(
    rule: dict[str, object],
) -> None:
    """`docs/operations.md#<alert>` exists: a heading named after the alert."""
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    anchor = f"docs/operations.md#{str(rule['alert']).lower()}"
    assert str(annotations["runbook"]).startswith(anchor)
    assert f"### {rule['alert']}\n" in OPERATIONS_PAGE.read_text()


@pytest.mark.parametrize(
    ("expr", "problems"),
    [
        ('sum(rate(scalepy_cache_requests_total{scalepy_cache_result="hit"}[5m]))', []),
        ("rate(scalepy_cache_hits_total[5m])", ["metric scalepy_cache_hits_total"]),
        (
            'max by (le) (scalepy_breaker_state{state="open", job=~"$job"})',
            ["label state of scalepy_breaker_state"],
        ),
        (
            "histogram_quantile(0.9, sum by (le) (rate(http_server_request_duration_seconds[1m])))",
            ["metric http_server_request_duration_seconds"],
        ),
        ("a_total / on (job) group_left b_total", ["metric a_total", "metric b_total"]),
        ('{__name__="scalepy_breaker_state"}', ["a selector without a metric name"]),
    ],
)
def test_the_check_catches_what_nobody_emits(expr: str, problems: list[str]) -> None:
    """The check itself: a misspelt metric, a wrong label, a histogram without `_bucket`."""
    assert problems == unknown(expr)


def test_the_dashboard_is_portable_and_its_panels_do_not_overlap() -> None:
    """Every query uses the `datasource` variable; no two panels share a grid cell."""
    document = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert "prometheus" == variables["datasource"]["query"]
    assert document["schemaVersion"] >= 39
    cells: dict[tuple[int, int], str] = {}
    for panel in document["panels"]:
        if panel["type"] != "row":
            assert "${datasource}" == panel["datasource"]["uid"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
