"""Markdown tables of benchmark results, as the docs include them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from _harness import figure_row
from _results import Metadata, Result
from tables import markdown, save

if TYPE_CHECKING:
    from pathlib import Path


def _result() -> Result:
    result = Result(benchmark="demo", metadata=Metadata.collect(["bench"], redis="7.0.15"))
    result.rows += [
        figure_row("scalepy", "miss, 1 task", 2000.0, ratio=1.25, ratio_to="vs best peer (p)"),
        figure_row("peer", "miss, 1 task", 1600.0, errors=3, ratio=1.0, more={"vs raw GET": 0.5}),
        figure_row("scalepy", "miss, 50 tasks", 9000.0),
    ]
    result.notes.append("unpinned")
    return result


def test_a_row_with_errors_shows_no_ratio() -> None:
    """A row whose errors/fallbacks count is not 0 reads "not counted", not its ratio."""
    lines = markdown(_result()).splitlines()
    rows = [line for line in lines if line.startswith("| ") and "contender" not in line]
    assert "| miss, 1 task | scalepy | 2,000 | 1.25x | vs best peer (p) |  | 0 |" == rows[0]
    assert "|  | peer | 1,600 | not counted |  | 0.50x | 3 |" == rows[1]
    assert rows[2].startswith("| miss, 50 tasks | scalepy | 9,000 |")


def test_conditions_and_notes_come_first(tmp_path: Path) -> None:
    """The file names the machine, the versions and the notes above the table."""
    path = save(_result(), tmp_path)
    text = path.read_text()
    assert "demo.md" == path.name
    assert "redis 7.0.15" in text.splitlines()[0]
    assert "- unpinned" in text
    assert "| scenario | contender | per second | ratio | compared with | vs raw GET |" in text
