"""Task queue throughput on one Redis: scalepy against saq, arq and taskiq-redis.

Run (services up, see scripts/services.sh; taskiq-redis comes with the `bench` extra):

    .venv/bin/python benchmarks/task_queue.py --setup    # once: the peers' own venvs
    .venv/bin/python benchmarks/task_queue.py [--url redis://127.0.0.1:6379] [--db 15]
        [--rounds 3] [--seconds 1] [--jobs 3000] [--only scalepy,saq,...]

Each peer runs on the redis-py it declares, which one venv cannot hold: arq pins
redis<6, saq's `redis` extra redis<8 (on redis-py 8 it runs a third slower here),
taskiq-redis redis>=8. So `--setup` makes a venv for arq and one for saq under
`--venvs` (PEER_VENVS has the pins); taskiq-redis runs in the project's venv, next to
scalepy.

(Not `benchmarks/queue.py`: scripts run from `benchmarks/` have it first on sys.path,
and a `queue.py` there would shadow the standard library's `queue` for every benchmark,
redis-py's `from queue import LifoQueue` included.)

Every producer and worker is a process of its own (`_queue_agent.py`), each library at
its documented defaults, workers at concurrency 32 per process. The benchmark owns one
Redis database (`--db`, which must be empty) and flushes it when done.

- Enqueue: jobs/s of one producer process, with 1 and 50 concurrent callers each
  enqueueing one job per call, and with one caller enqueueing batches of `--batch`
  through the library's bulk path (scalepy `enqueue_many`; saq, arq and taskiq have no
  bulk API, so their batch is that many concurrent single enqueues). The database is
  emptied after every measurement.
- Processing: no-op jobs/s with 1 and with 2 worker processes. Each round empties the
  database and starts the contender's worker processes, which import their library,
  connect, announce themselves and wait for a go signal; the queue is filled with
  `--jobs` jobs (arq at its default poll: a sixth, see ARQ_DIVISOR), then the
  workers go. The clock runs from the first job done to the last, or to
  `--max-seconds` (the figure is then marked `*`). Done jobs are counted the same way
  for every library: the no-op job bumps a counter that its process adds to a Redis
  key every 5 ms. Logging stays unconfigured everywhere (arq's and taskiq's commands
  would log every job at INFO).

- Placement: a local Redis is pinned to one CPU while enqueueing, and the enqueue
  table is measured twice, producers on Redis' CPU and on another (see
  `_placement.py`: on a VM the cross-CPU round trip costs 3x more, and unpinned
  figures swing by 2x with the scheduler's choice). Processing is not pinned.
- The floor row (`_queue_floor.py`) is no queue: a bare `asyncio.Protocol` sending `PING`
  where the others enqueue, on the same Redis. A caller that awaits an acknowledged
  enqueue waits at least that round trip, so in the 1-caller column no library can
  beat it; the run prints how far each 1-caller figure is above it.

Rounds alternate between contenders; each figure is the median over `--rounds`, and
its ratio compares it with the fastest peer (not scalepy) in the same column.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from redis.asyncio import Redis

from _placement import pinned_redis
from _queue_processes import ProducerProcess, WorkerGroup, progress

VENVS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scalepy-bench"
PEER_VENVS: dict[str, tuple[str, ...]] = {  # venv name: what `--setup` installs into it
    "arq": ("arq==0.28.0",),
    # saq imports typing_extensions without declaring it.
    "saq": ("saq[redis,hiredis]==0.26.4", "typing_extensions"),
}
POLL = 0.002  # seconds between two reads of a done counter
# arq at its default poll takes 160 jobs per 0.5 s: a sixth of --jobs (500 of 3,000, four
# polls) makes its rounds last about as long as the others'.
ARQ_DIVISOR = 6
READY_TIMEOUT = 60.0  # seconds for a worker process to start
ENQUEUE_MODES = {"1 caller": ("single", 1), "50 callers": ("single", 50), "bulk": ("batch", 1)}


@dataclass(frozen=True, slots=True)
class Contender:
    """One library, or one configuration of it: a row of the tables."""

    key: str
    label: str
    peer: bool = True
    enqueues: bool = True  # False where another row measures the same producer
    works: bool = True  # False for the floor row, which has no worker
    venv: str | None = None  # a key of PEER_VENVS, or None for the project's venv
    jobs_divisor: int = 1  # processes --jobs // jobs_divisor jobs per round


CONTENDERS = (
    Contender("scalepy", "scalepy", peer=False),
    Contender("saq", "saq", venv="saq"),
    Contender("arq", "arq (poll_delay 0.5 s, default)", venv="arq", jobs_divisor=ARQ_DIVISOR),
    Contender("arq-10ms", "arq (poll_delay 0.01 s)", enqueues=False, venv="arq"),
    Contender("taskiq-list", "taskiq-redis list broker"),
    Contender("taskiq-stream", "taskiq-redis stream broker"),
    Contender("floor", "(floor: bare PING round trip)", peer=False, works=False),
)

PEERS = {c.key for c in CONTENDERS if c.peer}
Column = dict[str, float]  # jobs/s by contender key


@dataclass(slots=True)
class Bench:
    """What one run shares: options, Redis, the log folder, producers, capped figures."""

    options: argparse.Namespace
    url: str
    redis: Redis
    logs: Path
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    producers: dict[str, ProducerProcess] = field(default_factory=dict)
    capped: set[tuple[str, str]] = field(default_factory=set)  # (column, contender key)

    def python(self, contender: Contender) -> str:
        """The interpreter that runs `contender`."""
        return str(python(self.options.venvs, contender.venv))

    def queue(self, contender: Contender) -> str:
        """The queue name of `contender` in this run."""
        return f"bench-{self.run}-{contender.key}"

    def keys(self, contender: Contender) -> str:
        """The prefix of the ready and done counters of `contender`'s workers."""
        return f"bench-{self.run}:{contender.key}"


async def measure_enqueue(
    bench: Bench, contenders: list[Contender], cpus: set[int] | None
) -> dict[str, Column]:
    """Median enqueue jobs/s per mode and contender, after a discarded warm-up round.

    With `cpus`, every producer runs on those CPUs only.
    """
    options = bench.options
    producers = {c.key: bench.producers[c.key] for c in contenders}
    if cpus is not None:
        for producer in producers.values():
            await producer.ask(op="pin", cpus=sorted(cpus))
    samples: dict[str, dict[str, list[float]]] = {
        name: {key: [] for key in producers} for name in ENQUEUE_MODES
    }
    for round_ in range(-1, options.rounds):
        progress(f"enqueue: {f'round {round_ + 1}/{options.rounds}' if round_ >= 0 else 'warm-up'}")
        seconds = options.seconds if round_ >= 0 else options.seconds / 5
        for name, (mode, tasks) in ENQUEUE_MODES.items():
            for key, producer in producers.items():
                reply = await producer.ask(
                    op="throughput", mode=mode, tasks=tasks, seconds=seconds, batch=options.batch
                )
                await bench.redis.flushdb()
                if round_ >= 0:
                    samples[name][key].append(reply["jobs_per_second"])
    return {name: medians(column) for name, column in samples.items()}


def medians(samples: dict[str, list[float]]) -> Column:
    """The median of each contender's samples."""
    return {key: statistics.median(values) for key, values in samples.items()}


async def measure_round(bench: Bench, contender: Contender, processes: int, column: str) -> float:
    """Start workers held at their go signal, fill their queue, let them go, time the drain."""
    jobs = bench.options.jobs // contender.jobs_divisor
    await bench.redis.flushdb()
    logs = [bench.logs / f"{contender.key}-{processes}-{i}.log" for i in range(processes)]
    group = await WorkerGroup.start(
        bench.python(contender),
        logs,
        contender.key,
        bench.url,
        bench.queue(contender),
        bench.keys(contender),
        bench.options.concurrency,
    )
    try:
        await bench.producers[contender.key].ask(op="fill", jobs=jobs, batch=bench.options.batch)
        deadline = time.perf_counter() + READY_TIMEOUT
        while int(await bench.redis.get(f"{bench.keys(contender)}:ready") or 0) < processes:
            group.check_alive()
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{contender.label}: workers not ready in {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)
        await group.go()
        rate, capped = await clock(bench, contender, jobs)
        group.check_alive()
    finally:
        await group.stop()
    if capped:
        bench.capped.add((column, contender.key))
    return rate


async def clock(bench: Bench, contender: Contender, jobs: int) -> tuple[float, bool]:
    """Jobs/s from the first completion seen to the last (or `--max-seconds`), and if capped."""
    done_key, cap = f"{bench.keys(contender)}:done", bench.options.max_seconds
    went = time.perf_counter()
    done = 0
    while done == 0 and time.perf_counter() - went < cap:
        await asyncio.sleep(POLL)
        done = int(await bench.redis.get(done_key) or 0)
    started, first = time.perf_counter(), done
    while 0 < done < jobs and time.perf_counter() - started < cap:
        await asyncio.sleep(POLL)
        done = int(await bench.redis.get(done_key) or 0)
    elapsed = max(time.perf_counter() - started, POLL)
    progress(
        f"  {contender.label}: first done after {started - went:.2f} s, "
        f"then {done - first:,} more of {jobs:,} in {elapsed:.2f} s"
    )
    return (done - first) / elapsed, done < jobs


def processes_column(processes: int) -> str:
    """The column title of a processing figure."""
    return f"{processes} process{'es' * (processes > 1)}"


async def measure_processing(bench: Bench, contenders: list[Contender], processes: int) -> Column:
    """Median processed jobs/s per contender with `processes` worker processes each."""
    column = processes_column(processes)
    samples: dict[str, list[float]] = {c.key: [] for c in contenders}
    for round_ in range(bench.options.rounds):
        progress(f"processing, {column}: round {round_ + 1}/{bench.options.rounds}")
        for contender in contenders:
            samples[contender.key].append(await measure_round(bench, contender, processes, column))
    return medians(samples)


def table(bench: Bench, title: str, rows: list[Contender], columns: dict[str, Column]) -> None:
    """Print jobs/s per column and the ratio to the fastest peer in that column."""
    print(f"\n{title}")
    print(f"{'contender':<34}" + "".join(f" {name:>12} {'vs best':>8}" for name in columns))
    for contender in rows:
        cells = ""
        for name, column in columns.items():
            best = max(value for key, value in column.items() if key in PEERS)
            mark = "*" if (name, contender.key) in bench.capped else " "
            value = column[contender.key]
            cells += f" {value:>11,.0f}{mark} {value / best:>7.2f}x"
        print(f"{contender.label:<34}{cells}")


def floor(column: Column) -> None:
    """Print each 1-caller figure as the round trip plus the library's own time per enqueue."""
    rtt = 1e6 / column["floor"]
    best = max(value for key, value in column.items() if key in PEERS)
    print(
        f"1 caller: a bare round trip takes {rtt:.1f} us; 2x the best peer needs "
        f"{1e6 / (2 * best):.1f} us per enqueue, round trip included"
    )
    above = {key: 1e6 / value - rtt for key, value in column.items() if key != "floor"}
    fastest_peer = min(value for key, value in above.items() if key in PEERS)
    for key, spent in above.items():
        print(
            f"  {key:<14} {spent:6.1f} us above the round trip"
            f" ({fastest_peer / spent:.2f}x less than the best peer)"
        )


def python(venvs: Path, venv: str | None) -> Path:
    """The interpreter of a peer venv, or this one."""
    return venvs / venv / "bin" / "python" if venv else Path(sys.executable)


def setup(venvs: Path) -> None:
    """Make each peer venv of PEER_VENVS that is missing."""
    for venv, requirements in PEER_VENVS.items():
        if not python(venvs, venv).exists():
            progress(f"making {venvs / venv} with {', '.join(requirements)}")
            subprocess.run([sys.executable, "-m", "venv", venvs / venv], check=True)
            pip = [str(venvs / venv / "bin" / "pip"), "install", "--quiet", *requirements]
            subprocess.run(pip, check=True)


def versions(options: argparse.Namespace, contenders: list[Contender]) -> str:
    """The versions and the machine load the figures belong to."""
    names = ["scalepy-toolkit", "redis", "hiredis", "taskiq", "taskiq-redis"]
    found = [f"{name} {version(name)}" for name in names]
    for venv in sorted({c.venv for c in contenders if c.venv}):
        probe = f"from importlib.metadata import version as v; print(v({venv!r}), v('redis'))"
        out = subprocess.run([python(options.venvs, venv), "-c", probe], capture_output=True)
        found.append("{} {} (on redis {})".format(venv, *out.stdout.decode().split()))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"Python {sys.version.split()[0]}; " + ", ".join(found) + f"; load average {load}"


def choose(options: argparse.Namespace) -> tuple[list[Contender], list[str]]:
    """The contenders to run, and a line for each one left out, saying why."""
    wanted = set(options.only.split(",")) if options.only else {c.key for c in CONTENDERS}
    chosen: list[Contender] = []
    left_out: list[str] = []
    for contender in (c for c in CONTENDERS if c.key in wanted):
        if contender.key == "scalepy" and importlib.util.find_spec("scalepy.queue") is None:
            left_out.append(f"{contender.label}: not run, scalepy.queue is not importable")
        elif not python(options.venvs, contender.venv).exists():
            left_out.append(f"{contender.label}: not run, no venv {contender.venv} (--setup)")
        else:
            chosen.append(contender)
    if not any(c.peer for c in chosen):
        raise SystemExit("no peer to compare with: check --only, or run --setup")
    return chosen, left_out


def parse() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="redis://127.0.0.1:6379", help="Redis, no database")
    parser.add_argument("--db", type=int, default=15, help="an empty database the run owns")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per enqueue measurement")
    parser.add_argument("--jobs", type=int, default=3000, help="jobs per processing round")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="processing round cap")
    parser.add_argument("--batch", type=int, default=100, help="jobs per bulk enqueue")
    parser.add_argument("--concurrency", type=int, default=32, help="per worker process")
    parser.add_argument("--venvs", type=Path, default=VENVS, help="where the peer venvs live")
    parser.add_argument("--setup", action="store_true", help="make missing peer venvs, exit")
    parser.add_argument("--only", default="", help=",".join(c.key for c in CONTENDERS))
    return parser.parse_args()


def main() -> None:
    options = parse()
    if options.setup:
        setup(options.venvs)
        return
    asyncio.run(run(options))


async def run(options: argparse.Namespace) -> None:
    """Measure, print the tables, and leave the database empty."""
    contenders, left_out = choose(options)
    url = f"{options.url.rstrip('/')}/{options.db}"
    redis = Redis.from_url(url)
    if held := await redis.dbsize():
        await redis.aclose()
        raise SystemExit(f"database {options.db} holds {held} keys, and the run flushes it")
    print(versions(options, contenders))
    with tempfile.TemporaryDirectory(prefix="scalepy-queue-bench-") as logs:
        bench = Bench(options, url, redis, Path(logs))
        try:
            for c in contenders:
                bench.producers[c.key] = await ProducerProcess.start(
                    bench.python(c),
                    bench.logs / f"{c.key}-producer.log",
                    c.key,
                    url,
                    bench.queue(c),
                )
            enqueuers = [c for c in contenders if c.enqueues]
            async with pinned_redis(redis) as placements:
                enqueue = {
                    title: await measure_enqueue(bench, enqueuers, cpus)
                    for title, cpus in placements
                }
            workers = [c for c in contenders if c.works]
            processing = {
                processes_column(n): await measure_processing(bench, workers, n) for n in (1, 2)
            }
        finally:
            await asyncio.gather(*(producer.aclose() for producer in bench.producers.values()))
            await redis.flushdb()
            await redis.aclose()
    rounds = f"medians of {options.rounds} rounds"
    for title, columns in enqueue.items():
        table(
            bench,
            f"Enqueue, jobs/s, {title} ({rounds} of {options.seconds:g} s; bulk: batches of "
            f"{options.batch})",
            enqueuers,
            columns,
        )
        if "floor" in columns["1 caller"]:
            floor(columns["1 caller"])
    table(
        bench,
        f"Processed no-op jobs/s ({rounds} of {options.jobs:,} jobs, arq at its default poll "
        f"{options.jobs // ARQ_DIVISOR:,}; concurrency {options.concurrency} per worker process)",
        workers,
        processing,
    )
    if bench.capped:
        print(f"* a round hit --max-seconds: jobs done in {options.max_seconds:g} s")
    for line in left_out:
        print(line)


if __name__ == "__main__":
    main()
