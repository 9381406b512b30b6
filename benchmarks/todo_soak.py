"""Soak: the Todo API under steady load for a long while; memory flat, no error, latency stable.

Run from the repository root (`tests.support` starts the private servers):

    PYTHONPATH=. .venv/bin/python benchmarks/todo_soak.py                # 20 minutes
    PYTHONPATH=. .venv/bin/python benchmarks/todo_soak.py --minutes 2    # the smoke variant

The stack of benchmarks/_todo_stack.py (3 uvicorn replicas behind nginx, a worker, on
a private Redis and PostgreSQL) gets the 90/10 read/write mix from the open-loop
client at `--rate` req/s, by default 70 % of the capacity measured first (64
connections back to back for `--capacity-requests` requests). Every 10 s it samples
the resident memory (RSS) of every replica and of the worker.

Bounds, checked after the warm-up (`--warmup`, by default a quarter of the run, at
least 30 s): each process's RSS grows by less than `--rss-bound` MB per 10 minutes (the
slope of a least-squares line through its samples), no request fails, and no
minute's p99 latency is more than `--p99-spread` times the median minute's. It prints
the per-minute latency and the RSS trends, writes them in the results format
(benchmarks/_results.py) to `--results`/todo_soak.json (`benchmarks/plots.py` draws
latency and RSS over time), and exits 1 when a bound fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from _openloop import Bucket, OpenLoop, Records, buckets, summary
from _results import Latency, Metadata, Result, Row, Series
from _todo_stack import Mix, Running, failed_rows, failures_per_window, private_stack, rss_bytes

if TYPE_CHECKING:
    from collections.abc import Sequence

_RESULTS = Path(__file__).resolve().parent / "results"
_SAMPLE_EVERY = 10.0
_CAPACITY_CONNECTIONS = 64


async def measure_capacity(running: Running, mix: Mix, requests: int) -> float:
    """Requests per second with `_CAPACITY_CONNECTIONS` connections sending back to back.

    Every request is due at once: the open-loop client then works as a closed loop.
    """
    records = await OpenLoop(
        running.target, mix, rate=1e9, max_connections=_CAPACITY_CONNECTIONS, timeout=30.0
    ).run(requests / 1e9)
    return len(records) / (max(records.ended) - min(records.started))


Samples = dict[str, list[tuple[float, int]]]


async def sample_rss(running: Running, load: OpenLoop, every: float) -> Samples:
    """RSS of every replica and the worker each `every` s, until cancelled."""
    samples: Samples = {name: [] for name in running.pids()}
    await load.started.wait()
    try:
        while True:
            now = load.elapsed()
            for name, pid in running.pids().items():
                samples[name].append((round(now, 3), rss_bytes(pid)))
            await asyncio.sleep(every - load.elapsed() % every)
    except asyncio.CancelledError:
        return samples


def slope(points: Sequence[tuple[float, int]]) -> float:
    """Least-squares slope (units per second) of (seconds, value) points; 0 for fewer than 2."""
    if len(points) < 2:
        return 0.0
    return statistics.linear_regression([t for t, _ in points], [v for _, v in points]).slope


async def soak(args: argparse.Namespace) -> tuple[Result, bool]:
    """Start the stack, find the rate, run the load while sampling RSS; judge and report."""
    records, samples, rate, capacity = await _run(args)
    warmup = args.warmup if args.warmup is not None else max(30.0, args.minutes * 15)
    checks = _judge(args, records, samples, warmup)
    result = Result(
        benchmark="todo_soak",
        metadata=Metadata.collect(
            capacity=capacity, warmup=warmup, stack="3 uvicorn replicas behind nginx, a worker, "
            "a private redis-server and PostgreSQL (benchmarks/_todo_stack.py)",
        ),
    )  # fmt: skip
    whole = summary(records, range(len(records)), start=0.0, width=args.minutes * 60)
    failed = len(failed_rows(records))
    result.rows.append(
        Row(
            contender="todo", scenario="soak, 90/10 read/write",
            requests_per_second=(whole.sent - failed) / whole.width,
            latency=Latency(p50=whole.p50 * 1e3, p99=whole.p99 * 1e3, max=whole.max * 1e3),
            requests=whole.sent, errors=failed, offered_rate=rate,
        )
    )  # fmt: skip
    windows = buckets(records, width=_SAMPLE_EVERY)
    starts = [window.start for window in windows]
    result.series += [
        Series(name="p99 latency", unit="ms", points=_points(starts, windows, "p99")),
        Series(name="p50 latency", unit="ms", points=_points(starts, windows, "p50")),
        *(
            Series(name=f"RSS {name}", unit="MiB", points=[(t, v / 2**20) for t, v in points])
            for name, points in samples.items()
        ),
    ]
    result.notes += [f"[{'ok' if ok else 'FAILED'}] {name}: {text}" for name, ok, text in checks]
    return result, all(ok for _, ok, _ in checks)


async def _run(args: argparse.Namespace) -> tuple[Records, Samples, float, float | None]:
    """The load on a fresh stack: its records, the RSS samples, the rate, the capacity."""
    async with private_stack(port_base=args.port_base or None, say=print) as running:
        mix = Mix(
            read_ids=await running.seed(1000, "read"),
            write_ids=await running.seed(100, "write"),
            token=running.token,
            run=f"soak-{uuid.uuid4().hex[:8]}",
        )
        capacity = None
        rate = args.rate
        if rate is None:
            capacity = await measure_capacity(running, mix, args.capacity_requests)
            rate = round(capacity * 0.7)
            print(f"capacity {capacity:.0f} req/s; soaking at 70 %: {rate} req/s")
        load = OpenLoop(running.target, mix, rate=rate, timeout=30.0)
        sampler = asyncio.create_task(sample_rss(running, load, _SAMPLE_EVERY))
        records = await load.run(args.minutes * 60)
        sampler.cancel()
        samples = await sampler
    return records, samples, rate, capacity


def _judge(
    args: argparse.Namespace, records: Records, samples: Samples, warmup: float
) -> list[tuple[str, bool, str]]:
    """Print the per-minute latency and the RSS trends; the checks (name, passed, detail)."""
    print(f"{len(records)} requests; warm-up {warmup:g} s")
    minutes = buckets(records, width=60.0)
    failures = failures_per_window(records, 60.0)
    print(" min    sent  failed   p50 ms   p99 ms   max ms  client lag p99 ms")
    for n, minute in enumerate(minutes):
        print(
            f"{n:4d} {minute.sent:7d} {failures[n]:7d} {minute.p50 * 1e3:8.1f} "
            f"{minute.p99 * 1e3:8.1f} {minute.max * 1e3:8.1f} {minute.lag_p99 * 1e3:8.1f}"
        )
    growth = {
        name: slope([p for p in points if p[0] >= warmup]) * 600 / 1e6
        for name, points in samples.items()
    }
    for name, points in samples.items():
        print(
            f"  RSS {name}: {points[0][1] / 1e6:.1f} -> {points[-1][1] / 1e6:.1f} MB, "
            f"{growth[name]:+.2f} MB per 10 min after the warm-up"
        )
    failed_ones = failed_rows(records)
    failed = len(failed_ones)
    for line in failure_kinds(records, failed_ones):
        print(f"  failed: {line}")
    steady = [minute.p99 for minute in minutes if minute.start >= warmup]
    spread = max(steady) / statistics.median(steady) if steady else 1.0
    checks = [
        (
            f"RSS grows < {args.rss_bound:g} MB per 10 min after the warm-up, every process",
            all(mb < args.rss_bound for mb in growth.values()),
            ", ".join(f"{name} {mb:+.2f}" for name, mb in growth.items()),
        ),
        (
            "no request failed",
            failed == 0,
            f"{failed} of {len(records)}"
            + "".join(f"; {line}" for line in failure_kinds(records, failed_ones)),
        ),
        (
            f"no minute's p99 after the warm-up over {args.p99_spread:g}x the median minute's",
            spread <= args.p99_spread,
            f"{spread:.2f}x",
        ),
    ]
    for name, ok, detail in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {name}: {detail}")
    return checks


def failure_kinds(records: Records, rows: Sequence[int]) -> list[str]:
    """What the failed `rows` were: kind of request, status (or error), how many, a sample.

    A soak's bound is "no failure"; when one fails, this says which request, what it got
    and the first answer's opening (or the client's error), so a run can be diagnosed.
    """
    kinds: dict[tuple[str, int], list[int]] = {}
    for row in rows:
        kinds.setdefault((records.label_of(row), records.status[row]), []).append(row)
    lines = []
    for (label, status), of_kind in sorted(kinds.items()):
        first = of_kind[0]
        detail = (
            records.errors.get(first)
            or records.answers.get(first, b"").decode("latin-1").replace("\r\n", " | ")[:300]
        )
        lines.append(f"{label} -> {status} x{len(of_kind)}: {detail}")
    return lines


def _points(starts: list[float], windows: list[Bucket], field: str) -> list[tuple[float, float]]:
    """(start, latency in ms) of each window: its `p50` or `p99`."""
    return [
        (start, getattr(window, field) * 1e3) for start, window in zip(starts, windows, strict=True)
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the soak (20)")
    parser.add_argument("--rate", type=float, help="req/s (default: 70 %% of the capacity)")
    parser.add_argument("--capacity-requests", type=int, default=5000, help="to measure it")
    parser.add_argument("--warmup", type=float, help="s left out of the trends")
    parser.add_argument("--rss-bound", type=float, default=1.0, help="MB per 10 min (1)")
    parser.add_argument("--p99-spread", type=float, default=3.0, help="x the median (3)")
    parser.add_argument(
        "--port-base", type=int, default=19100, help="nginx; Redis +1, PG +2; 0: free ports"
    )
    parser.add_argument(
        "--results", type=Path, default=_RESULTS, help="JSON goes there (benchmarks/results)"
    )
    return parser.parse_args(argv)


async def main(argv: Sequence[str]) -> int:
    """Soak; 1 if a bound failed."""
    args = parse_args(argv)
    result, passed = await soak(args)
    result.write(args.results / "todo_soak.json")
    print(f"  written to {args.results / 'todo_soak.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
