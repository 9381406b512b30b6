"""Render benchmark results (JSON from `_results.py`) to SVG pictures for the docs.

Run:

    .venv/bin/python benchmarks/plots.py results/todo_load.json [...] --out docs/assets/benchmarks

Each result file gives one SVG per plot kind that has data in it, named
`<benchmark>-<kind>.svg`. A plot kind is a function from a `Result` to a matplotlib
`Figure`, or `None` when the result has nothing for it; `PLOTS` names them all, so
a benchmark with a new kind of figure adds a function and one entry.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figures

from _results import Result, Row

__all__ = ("PLOTS", "Plot", "bars", "render", "save", "timeline")

Plot = Callable[[Result], Figure | None]
"""A plot kind: the figure of a result, or `None` when the result has no data for it."""

_BAR_HEIGHT = 0.35  # inches per contender
_WIDTH = 8.0  # inches: the docs' text column


def bars(
    result: Result, title: str, unit: str, value: Callable[[Row], float | None]
) -> Figure | None:
    """Horizontal bars of `value` per contender, one panel per scenario (in the rows' order).

    Rows whose value is `None` are left out; `None` when no row has one.
    """
    scenarios: dict[str, list[tuple[str, float]]] = {}
    for row in result.rows:
        measured = value(row)
        if measured is not None:
            scenarios.setdefault(row.scenario, []).append((row.contender, measured))
    if not scenarios:
        return None
    heights = [max(1.2, 0.6 + _BAR_HEIGHT * len(rows)) for rows in scenarios.values()]
    figure = Figure(figsize=(_WIDTH, sum(heights) + 0.6), layout="constrained")
    figure.suptitle(f"{result.benchmark}: {title}")
    axes = figure.subplots(len(scenarios), 1, squeeze=False, height_ratios=heights)[:, 0]
    for panel, (scenario, rows) in zip(axes, scenarios.items(), strict=True):
        names = [name for name, _ in rows][::-1]  # the first row on top
        figures = [measured for _, measured in rows][::-1]
        drawn = panel.barh(names, figures, color="tab:blue")
        panel.bar_label(drawn, labels=[f"{v:,.4g}" for v in figures], padding=3, fontsize=8)
        panel.set_title(scenario, loc="left", fontsize=10)
        panel.set_xlabel(unit)
        panel.margins(x=0.15)
        panel.tick_params(axis="y", labelsize=8)
    return figure


def throughput(result: Result) -> Figure | None:
    """Requests per second per contender."""
    return bars(result, "throughput (higher is better)", "requests/s", _requests_per_second)


def p99(result: Result) -> Figure | None:
    """99th-percentile latency per contender."""
    return bars(result, "p99 latency (lower is better)", "ms", _p99)


def timeline(result: Result) -> Figure | None:
    """Each series over time, one panel per series sharing the time axis; events as lines."""
    if not result.series:
        return None
    figure = Figure(figsize=(_WIDTH, 1.0 + 1.6 * len(result.series)), layout="constrained")
    figure.suptitle(f"{result.benchmark}: over time")
    axes = figure.subplots(len(result.series), 1, sharex=True, squeeze=False)[:, 0]
    for panel, series in zip(axes, result.series, strict=True):
        panel.plot([t for t, _ in series.points], [v for _, v in series.points], color="tab:blue")
        for at, text in series.events:
            panel.axvline(at, color="tab:red", linestyle="--", linewidth=1)
            panel.annotate(
                text, (at, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -10),
                textcoords="offset points", fontsize=8, color="tab:red",
            )  # fmt: skip
        panel.set_ylabel(f"{series.name}\n({series.unit})", fontsize=8)
        panel.set_ylim(bottom=0)
    axes[-1].set_xlabel("seconds")
    return figure


def _requests_per_second(row: Row) -> float | None:
    return row.requests_per_second


def _p99(row: Row) -> float | None:
    return row.latency.p99


PLOTS: dict[str, Plot] = {"throughput": throughput, "p99": p99, "timeline": timeline}
"""Every plot kind, by the name its files end with."""


def render(result: Result) -> dict[str, Figure]:
    """Every plot kind that has data in `result`, by name."""
    figures = {kind: plot(result) for kind, plot in PLOTS.items()}
    return {kind: figure for kind, figure in figures.items() if figure is not None}


def save(result: Result, directory: Path) -> list[Path]:
    """Write every figure of `result` as `<directory>/<benchmark>-<kind>.svg`; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, figure in render(result).items():
        path = directory / f"{result.benchmark}-{kind}.svg"
        # Text as text (small, searchable files in the page's font); no date and a fixed
        # id salt, so the same result gives the same file (clean diffs).
        with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": result.benchmark}):
            figure.savefig(path, format="svg", metadata={"Date": None})
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files of _results.Result")
    parser.add_argument("--out", type=Path, default=Path("docs/assets/benchmarks"))
    options = parser.parse_args()
    for path in options.results:
        for written in save(Result.read(path), options.out):
            print(written)


if __name__ == "__main__":
    main()
