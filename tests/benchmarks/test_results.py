"""The results format every benchmark writes, and the SVG pictures rendered from it."""

from __future__ import annotations

import json
import subprocess
from typing import TYPE_CHECKING

import pytest

import _results
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


def test_the_commit_is_dirty_only_when_a_source_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results and plots rewritten by a run's earlier benchmarks leave the commit clean."""
    for path in ("src/code.py", "benchmarks/results/cache.json", "docs/assets/benchmarks/a.svg"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("1")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    monkeypatch.setattr(_results, "_REPOSITORY", tmp_path)
    (tmp_path / "benchmarks/results/cache.json").write_text("2")
    (tmp_path / "docs/assets/benchmarks/a.svg").write_text("2")
    clean = Metadata.collect([]).commit
    assert not clean.endswith("-dirty")
    (tmp_path / "src/code.py").write_text("2")
    assert f"{clean}-dirty" == Metadata.collect([]).commit


def test_a_file_of_another_format_is_refused() -> None:
    """Reading a file of another format version fails and names the versions."""
    data = _result().to_json() | {"format": FORMAT + 1}
    with pytest.raises(ValueError, match="results format"):
        Result.from_json(data)


def test_plots_are_svg_files_naming_every_contender(tmp_path: Path) -> None:
    """Throughput and p99 bar charts are written, one per kind, with each contender's name."""
    written = save(_result(), tmp_path)
    assert [
        tmp_path / "demo-throughput.svg",
        tmp_path / "demo-p99.svg",
        tmp_path / "demo-timeline.svg",
    ] == written
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


def test_a_timeline_draws_each_series_by_unit_and_marks_the_events(tmp_path: Path) -> None:
    """One panel per unit (latency on a log scale), a line per series, each event labelled."""
    result = Result(benchmark="fault", metadata=Metadata.collect([]))
    points = [(float(t), 10.0 + t) for t in range(10)]
    result.series += [
        Series(name="p99 latency", unit="ms", points=points, events=[(3.0, "redis stopped")]),
        Series(name="p50 latency", unit="ms", points=points),
        Series(name="RSS app-1", unit="MiB", points=points, events=[(6.0, "redis started")]),
    ]
    figure = render(result)["timeline"]
    assert [("ms", "log"), ("MiB", "linear")] == [
        (axes.get_ylabel(), axes.get_yscale()) for axes in figure.axes
    ]
    assert [2, 1] == [len(axes.lines) - 2 for axes in figure.axes]  # 2 event lines in each
    text = save(result, tmp_path)[0].read_text()
    for label in ("p99 latency", "p50 latency", "RSS app-1", "redis stopped", "redis started"):
        assert label in text
