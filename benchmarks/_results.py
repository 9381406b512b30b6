"""The one results format every benchmark writes: JSON, read back by `plots.py`.

A `Result` is one run of one benchmark: the machine and the command it came from
(`Metadata`), one `Row` per contender and scenario (throughput, latency
percentiles, errors) and, for benchmarks that watch a run over time (soak,
faults), named `Series` of `(seconds since start, value)` points. Fields a
benchmark has no figure for stay empty; anything else it wants to keep goes in
a row's or the result's `extra`.

    result = Result(benchmark="todo_load", metadata=Metadata.collect())
    result.rows.append(Row(contender="todo", scenario="read", requests_per_second=9000.0))
    result.write(Path("results/todo_load.json"))
    again = Result.read(Path("results/todo_load.json"))
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

__all__ = ("FORMAT", "Latency", "Metadata", "Result", "Row", "Series")

FORMAT = 1
"""Version of the format; `Result.read` refuses files of another one."""

_REPOSITORY = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Latency percentiles of one row, in milliseconds (`None`: not measured)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    p999: float | None = None
    """The 99.9th percentile."""
    max: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One contender in one scenario: what the load generator saw."""

    contender: str
    """Who was measured, e.g. `todo (2 workers)`."""
    scenario: str = ""
    """What it was asked to do, e.g. `read by id`; empty when a benchmark has one scenario."""
    requests_per_second: float
    latency: Latency = field(default_factory=Latency)
    requests: int = 0
    """Responses counted (and requests that failed without one)."""
    errors: int = 0
    """Failures: transport errors, timeouts and unexpected statuses."""
    intended: int = 0
    """Non-2xx responses the benchmark asked for (e.g. 429 from a rate limiter under test)."""
    offered_rate: float | None = None
    """Requests per second the generator aimed at; `None` for a closed loop (as fast as it can)."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """A value sampled over a run: `points` are `(seconds since the start, value)`."""

    name: str
    """What is sampled, e.g. `p99 latency` or `RSS app-1`."""
    unit: str
    """The value's unit, e.g. `ms`, `MiB`, `req/s`."""
    points: list[tuple[float, float]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    """Moments worth marking on a plot, e.g. `(30.0, "Redis stopped")`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Metadata:
    """Where and how a result was measured, to read absolute figures against."""

    cpu: str
    cores: int
    kernel: str
    python: str
    command: str
    """The command line that produced the result, shell-quoted."""
    date: str
    """When the run started, ISO 8601 in UTC."""
    commit: str
    """The commit measured, `-dirty` if a source file differed from it, or `unknown`."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Versions of the servers measured, settings, anything a reader needs to repeat it."""

    @classmethod
    def collect(cls, argv: list[str] | None = None, **extra: Any) -> Self:
        """Describe this machine, this checkout and the command `argv` (default: this one)."""
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            kernel=f"{platform.system()} {platform.release()}",
            python=f"{platform.python_implementation()} {platform.python_version()}",
            command=shlex.join(argv if argv is not None else [sys.executable, *sys.argv]),
            date=datetime.now(UTC).isoformat(timespec="seconds"),
            commit=_commit(),
            extra=extra,
        )

    def describe(self) -> str:
        """One line for a benchmark's output: the machine and the checkout."""
        return (
            f"{self.cpu}, {self.cores} cores, {self.kernel}, {self.python}; "
            f"commit {self.commit}, {self.date}"
        )


@dataclass(slots=True, kw_only=True)
class Result:
    """One run of one benchmark."""

    benchmark: str
    """The benchmark's name, e.g. `todo_load`; plots are named after it."""
    metadata: Metadata
    rows: list[Row] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Sentences a reader needs with the figures (e.g. how the rate limit was set)."""

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data, with the format version."""
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Build a result from `to_json()`'s data.

        Raises:
            ValueError: The data is of another format version.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"results format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            benchmark=data["benchmark"],
            metadata=Metadata(**data["metadata"]),
            rows=[Row(**{**row, "latency": Latency(**row["latency"])}) for row in data["rows"]],
            series=[
                Series(
                    name=series["name"],
                    unit=series["unit"],
                    points=[(t, value) for t, value in series["points"]],
                    events=[(t, text) for t, text in series["events"]],
                )
                for series in data["series"]
            ],
            notes=list(data["notes"]),
        )

    def write(self, path: Path) -> None:
        """Write the result to `path` (its directory is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> Self:
        """Read a result `write()` wrote."""
        data: dict[str, Any] = json.loads(path.read_text())
        return cls.from_json(data)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    names = (line.partition(":")[2].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.machine())


_NOT_SOURCE = (":(exclude)benchmarks/results", ":(exclude)docs/assets/benchmarks")


def _commit() -> str:
    """The commit, `-dirty` if a tracked file other than a result differs from it.

    The results and plots are left out: a run of several benchmarks rewrites them as
    it goes, and they do not change what is measured.
    """
    git = ["git", "-C", str(_REPOSITORY)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", *_NOT_SOURCE],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return "unknown"
    return f"{commit}-dirty" if changed else commit
