"""Render benchmark results (JSON from `_results.py`) as Markdown tables for the docs.

`run_all.py` calls it after the runs (`run_all.py --render-only` renders the JSON
already there). Each result gives `<out>/<benchmark>.md`: a line with the conditions (machine,
commit, date, versions, load), the result's notes, and one table with a row per
contender and scenario: its figure (per second, or ns per call for the
micro-benchmarks), the ratio the benchmark computed and what it compares with,
any further figures of the row, and the errors/fallbacks count. A row whose count
is not 0 does not measure what it says: its ratio is shown as "not counted".
The docs include these files, so the pages show what the JSON holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from _results import Result, Row

__all__ = ("markdown", "save")

_SHOWN = ("ratio", "ratio_to", "ns_per_call", "capped")  # extra keys with columns of their own
_LEFT = ("scenario", "contender", "compared with")


def markdown(result: Result) -> str:
    """The conditions, notes and table of `result`, as Markdown."""
    meta = result.metadata
    versions = ", ".join(f"{name} {value}" for name, value in meta.extra.items())
    lines = [
        f"*{meta.cpu}, {meta.cores} cores, {meta.kernel}, {meta.python}; {versions}; "
        f"commit `{meta.commit}`, {meta.date}.*",
        "",
        *(f"- {note}" for note in result.notes),
        "",
    ]
    timed = any("ns_per_call" in row.extra for row in result.rows)
    more = [key for key in _further(result.rows) if key not in _SHOWN]
    headers = ["scenario", "contender", "ns/call" if timed else "per second", "ratio"]
    headers += ["compared with", *(key.replace("_", " ") for key in more), "errors/fallbacks"]
    aligns = ["---" if header in _LEFT else "---:" for header in headers]
    lines += ["| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    previous = None
    for row in result.rows:
        figure = row.extra.get("ns_per_call") if timed else row.requests_per_second
        ratio = row.extra.get("ratio")
        cells = [
            "" if row.scenario == previous else row.scenario,
            row.contender + (" (capped)" if row.extra.get("capped") else ""),
            _number(figure),
            "not counted" if row.errors else ("" if ratio is None else f"{ratio:.2f}x"),
            str(row.extra.get("ratio_to") or ""),
            *(_cell(key, row.extra.get(key)) for key in more),
            f"{row.errors:,}",
        ]
        previous = row.scenario
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _further(rows: list[Row]) -> list[str]:
    """The extra keys of any row, in the order they first appear."""
    return list(dict.fromkeys(key for row in rows for key in row.extra))


def _number(value: Any) -> str:
    return "" if value is None else f"{value:,.0f}"


def _cell(key: str, value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}x" if key.startswith("vs") else _number(value)


def save(result: Result, directory: Path) -> Path:
    """Write `markdown(result)` to `<directory>/<benchmark>.md`; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result.benchmark}.md"
    path.write_text(markdown(result))
    return path
