"""The results format every benchmark writes, and the SVG pictures rendered from it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from _results import FORMAT, Latency, Metadata, Result, Row, Series
from plots import render, save

if TYPE_CHECKING:
    from pathlib import Path


def _result() -> Result:
    result = Result(benchmark="demo", metadata=Metadata.collect(["bench", "--quick"], wrk="4.1"))
    result.rows += [
        Row(
            contender=name, scenario=scenario, requests_per_second=rate, requests=int(rate),
            latency=Latency(p50=1.0, p99=p99, p999=2 * p99), errors=0, intended=1,
            extra={"workers": 2},
        )
        for scenario in ("read by id", "write")
        for name, rate, p99 in (("todo", 9000.0, 4.0), ("baseline", 3000.0, 12.0))
    ]  # fmt: skip
    result.series.append(Series(name="p99", unit="ms", points=[(0.0, 1.0)], events=[(0.5, "x")]))
    result.notes.append("rate limit 1e6/s")
    return result


def test_a_result_reads_back_as_written(tmp_path: Path) -> None:
    """Every field (rows, latency, series, notes, metadata) survives the JSON file."""
    result = _result()
    path = tmp_path / "nested" / "demo.json"
    result.write(path)
    assert result == Result.read(path)
    assert FORMAT == json.loads(path.read_text())["format"]


def test_metadata_describes_machine_and_command() -> None:
    """The metadata names the CPU, the core count, the command line and a commit."""
    metadata = Metadata.collect(["python", "bench.py", "--out", "a b"])
    assert "python bench.py --out 'a b'" == metadata.command
    assert metadata.cores >= 1
    assert metadata.cpu
    assert metadata.commit
    assert metadata.cpu in metadata.describe()


def test_a_file_of_another_format_is_refused() -> None:
    """Reading a file of another format version fails and names the versions."""
    data = _result().to_json() | {"format": FORMAT + 1}
    with pytest.raises(ValueError, match="results format"):
        Result.from_json(data)


def test_plots_are_svg_files_naming_every_contender(tmp_path: Path) -> None:
    """Throughput and p99 bar charts are written, one per kind, with each contender's name."""
    written = save(_result(), tmp_path)
    kinds = ("throughput", "p99", "timeline")  # the timeline: the result has a series
    assert [tmp_path / f"demo-{kind}.svg" for kind in kinds] == written
    for path in written[:2]:
        text = path.read_text()
        assert text.startswith("<?xml")
        assert "baseline" in text
        assert "write" in text


def test_a_kind_without_data_is_not_drawn() -> None:
    """A result without latencies gets a throughput chart and no p99 chart."""
    result = Result(benchmark="bare", metadata=Metadata.collect([]))
    result.rows.append(Row(contender="only", requests_per_second=1.0))
    assert ["throughput"] == list(render(result))


def test_series_are_drawn_as_a_timeline_with_their_events(tmp_path: Path) -> None:
    """A result with series gets a timeline: one panel per series, events marked and named."""
    result = Result(benchmark="halving", metadata=Metadata.collect([]))
    result.series += [
        Series(name="limit", unit="calls", points=[(0.0, 4.0), (1.0, 8.0)], events=[(0.5, "slow")]),
        Series(name="p99", unit="ms", points=[(0.0, 30.0), (1.0, 60.0)]),
    ]
    assert [tmp_path / "halving-timeline.svg"] == save(result, tmp_path)
    text = (tmp_path / "halving-timeline.svg").read_text()
    assert all(word in text for word in ("limit", "p99", "slow", "seconds"))
