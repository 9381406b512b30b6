"""The Todo API under load (issue 16), side by side with a tutorial-style baseline and a bare route.

Run (`scripts/bench.sh` installs wrk and nginx first, then runs this with its arguments):

    .venv/bin/python benchmarks/todo_load.py [--quick] [--seconds 10] [--rounds 3] [--json PATH]

Contenders, each started on this machine for its rows and stopped after them:

- `todo-1`, `todo-2`: the Todo API (examples/todo) as in production (`TODO_ENV=prod`,
  JWT on writes, both rate limits on Redis, Prometheus metrics and the two-level cache
  all on; OpenTelemetry wired but, with no SDK installed here, recording nothing; load
  shedding off, its default), uvicorn with 1 and 2 workers, clients straight to it;
- `todo-nginx-3`: 3 replicas behind the demo's nginx (examples/todo/demo: `Stack`, its
  worker and PostgreSQL relay included);
- `tutorial-1`, `tutorial-2`: `tutorial_app.py`, the same routes written the way the
  scaling tutorial writes them (one Redis GET/SETEX of one JSON key per read, slowapi,
  no invalidation), with the same worker counts;
- `bare-1`, `bare-2`: a bare Starlette JSON route, the ceiling (read scenarios only).

Scenarios (wrk keeps `--connections` connections busy; each row is `--seconds` of load
after `--warmup` seconds that fill the caches and are thrown away):

- `read`: `GET /todos/{id}` over 100 todos, cached after the warm-up;
- `list`: `GET /todos?limit=10`, cached;
- `write`: `POST /todos` with a bearer token;
- `mix`: 90 % reads by id, 10 % `PATCH /todos/{id}` of the same todos (the Todo API
  invalidates what a write changes, so reads after it miss; the baseline serves stale).

The whole sequence of contenders runs `--rounds` times (3 by default), so each
contender's rows are measured minutes apart, beside the others of each round; a row
shows its median round, and its ratios are the medians of the ratios measured within
each round (a Todo API row against the bare route and the tutorial of the same round),
so that a machine slower for a minute moves one round, not the verdict.

Both apps' rate limits are set high (`--rate-limit`), so every request pays for its
decision and none is refused; a 429 is counted apart from the errors anyway. Then,
for the p99 at equal offered load, the open-loop client (`_openloop.py`) sends the
same fixed rate of reads to the Todo API and the baseline (`--fixed-rate`; by default
half the rate the baseline reached with 2 workers, so that both sustain it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "todo"))

from _cpu import tree_cpu_seconds
from _openloop import OpenLoop, Target, percentile
from _openloop import Request as OpenRequest
from _results import Latency, Metadata, Result, Row
from _wrk import Request, WrkRun, run
from demo.processes import spawn
from demo.stack import Options, Stack, _delete_keys, _free_port, _wait_until_ok
from todo.auth import WRITE, issue_token
from todo.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_BENCHMARKS = Path(__file__).resolve().parent
_TODOS = 100  # seeded todos the reads cycle over
_PAGE = 10


@dataclass(frozen=True, slots=True)
class Contender:
    """One server setup: which app, how many processes, how clients reach it."""

    key: str
    name: str
    app: str
    """`todo`, `tutorial` or `bare`."""
    processes: int
    nginx: bool = False


# In the order they run: the baseline before the Todo API, whose fixed-rate row
# offers the rate derived from the baseline's.
CONTENDERS = (
    Contender("bare-1", "bare route, 1 worker", "bare", 1),
    Contender("bare-2", "bare route, 2 workers", "bare", 2),
    Contender("tutorial-1", "tutorial, 1 worker", "tutorial", 1),
    Contender("tutorial-2", "tutorial, 2 workers", "tutorial", 2),
    Contender("todo-1", "Todo API, 1 worker", "todo", 1),
    Contender("todo-2", "Todo API, 2 workers", "todo", 2),
    Contender("todo-nginx-3", "Todo API, 3 replicas + nginx", "todo", 3, nginx=True),
)
_FIXED = ("tutorial-2", "todo-2")  # the contenders of the fixed-rate rows
_FIXED_SHARE = 0.5  # of the baseline's closed-loop read rate: a load both can sustain
_FIXED_MAX = 2000.0  # req/s: about what the Python open-loop client sends on time here
SCENARIOS = ("read", "list", "write", "mix")
_READS = ("read", "list")  # the scenarios the bare route serves


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """What every contender shares in one run."""

    database_url: str
    redis_url: str
    rate_limit: str
    secret: str
    namespace: str
    logs: Path
    port: int = 0
    """Where a direct contender listens (one at a time); 0: a free port the kernel picks."""

    def env(self, contender: Contender) -> dict[str, str]:
        """The environment of `contender`'s processes."""
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(_BENCHMARKS), os.environ.get("PYTHONPATH", "")]),
            **self.todo_settings(),
            "TODO_NAMESPACE": self.namespace,
            "TODO_DATABASE_URL": self.database_url,
            "TODO_REDIS_URL": self.redis_url,
            "TUTORIAL_DATABASE_URL": self.database_url,
            "TUTORIAL_REDIS_URL": self.redis_url,
            "TUTORIAL_RATE_LIMIT": self.rate_limit,
            "TUTORIAL_JWT_SECRET": self.secret,
        }

    def todo_settings(self) -> dict[str, str]:
        """The Todo API's production settings, with the high rate limits of the benchmark."""
        return {
            "TODO_ENV": "prod",
            "TODO_AUTH": "jwt",
            "TODO_JWT_SECRET": self.secret,
            "TODO_RATE_LIMIT": self.rate_limit,
            "TODO_WRITE_RATE_LIMIT": self.rate_limit,
            "TODO_LOG_LEVEL": "INFO",
            # The production defaults, over the demo stack's small ones.
            "TODO_DB_BREAKER_OPEN_FOR": "30",
            "TODO_DB_BREAKER_MINIMUM_CALLS": "20",
            "TODO_DRAIN_DELAY": "5",
        }

    def token(self) -> str:
        """A bearer token with the write scope, valid for both apps."""
        settings = Settings(env="prod", jwt_secret=self.secret)
        return issue_token(settings, [WRITE], ttl=24 * 3600.0, subject="bench")


def scenario_requests(scenario: str, token: str) -> list[Request]:
    """The cycle of requests each connection sends in `scenario`."""
    ids = range(1, _TODOS + 1)
    write = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if scenario == "read":
        return [Request("GET", f"/todos/{n}") for n in ids]
    if scenario == "list":
        return [Request("GET", f"/todos?limit={_PAGE}")]
    if scenario == "write":
        return [Request("POST", "/todos", body='{"title":"written by wrk"}', headers=write)]
    return [
        Request("PATCH", f"/todos/{n}", body='{"completed":true}', headers=write)
        if n % 10 == 0
        else Request("GET", f"/todos/{n}")
        for n in ids
    ]


async def seed(database_url: str) -> None:
    """An empty todos table with `_TODOS` todos, ids from 1 (migrated by the caller)."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "TRUNCATE todos, notifications, notification_outbox RESTART IDENTITY"
        )
        await connection.execute(
            "INSERT INTO todos (title) SELECT 'todo ' || n FROM generate_series(1, $1) n", _TODOS
        )
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class Served:
    """A running contender: where clients reach it, the processes that serve it."""

    base_url: str
    pids: list[int]
    """The process ids whose CPU time (with their children's) is the contender's."""
    logs: list[Path]
    """Where those processes log."""

    def degraded(self) -> int:
        """How many times so far a primitive logged that it lost its backend.

        E.g. the rate limiter's 0.1 s timeout on Redis, under overload: meanwhile it
        served its fallback, and the rows measured that, not Redis.
        """
        return sum(log.read_text(errors="replace").count(" is degraded: ") for log in self.logs)


@contextlib.asynccontextmanager
async def serving(contender: Contender, setup: Setup) -> AsyncIterator[Served]:
    """Start `contender`, yield it once it answers, stop it."""
    if contender.nginx:
        stack = Stack(
            Options(replicas=contender.processes, port=0, settings=setup.todo_settings()),
            say=lambda line: None,
        )
        try:
            await stack.start()
            # nginx and the replicas; not the worker, which the direct contenders lack.
            serving = [c for c in stack.children if c.name != "worker"]
            yield Served(stack.base_url, [c.process.pid for c in serving], [c.log for c in serving])
        finally:
            await stack.stop()
        return
    port = _free_port(setup.port)
    factory, ready = {
        "todo": ("todo.app:create_app", "/health/ready"),
        "tutorial": ("tutorial_app:create_app", "/todos/1"),
        "bare": ("tutorial_app:ceiling_app", "/todos/1"),
    }[contender.app]
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(contender.processes),
        "--no-access-log", "--no-proxy-headers", "--timeout-keep-alive", "75",
        "--log-level", "warning",
    ]  # fmt: skip
    child = await spawn(contender.key, argv, setup.env(contender), setup.logs)
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_until_ok(child, base_url + ready)
        yield Served(base_url, [child.process.pid], [child.log])
    finally:
        await child.stop()


def row(contender: Contender, scenario: str, measured: WrkRun, cpu_seconds: float) -> Row:
    """The result row of one wrk run; a 429 is intended (counted apart), any other non-2xx not.

    Its throughput counts 2xx responses only: a fast refusal (a 429, a shedder's 503) is not
    a request served, and must not lift a ratio.

    `cpu_seconds`: what the contender's processes spent meanwhile.
    """
    latency = measured.latency_ms
    refused = measured.count(429)
    return Row(
        contender=contender.name,
        scenario=scenario,
        requests_per_second=measured.successes_per_second,
        latency=Latency(
            p50=latency["p50"],
            p90=latency["p90"],
            p99=latency["p99"],
            p999=latency["p999"],
            max=latency["max"],
        ),
        requests=measured.requests,
        errors=measured.non_2xx - refused + measured.socket_errors,
        intended=refused,
        extra={
            "key": contender.key,
            "processes": contender.processes,
            "responses_per_second": measured.requests_per_second,
            "cpu_us_per_request": cpu_seconds * 1e6 / max(1, measured.requests),
            "statuses": {str(status): count for status, count in measured.statuses.items()},
        },
    )


async def fixed_rate(
    contender: Contender, base_url: str, rate: float, seconds: float, connections: int
) -> Row:
    """Reads by id at `rate` per second, open loop: latency at an offered load both apps take."""
    reads = [OpenRequest("GET", f"/todos/{n}") for n in range(1, _TODOS + 1)]
    loop = OpenLoop(
        Target.from_url(base_url),
        source=lambda i: reads[i % len(reads)],
        rate=rate,
        max_connections=connections,
    )
    records = await loop.run(seconds)
    latencies = sorted(records.latency(n) * 1000 for n in range(len(records)))
    statuses = [records.status[n] for n in range(len(records))]
    failed = sum(1 for status in statuses if not 200 <= status < 300 and status != 429)
    return Row(
        contender=contender.name,
        scenario=f"read at {rate:g}/s",
        requests_per_second=sum(1 for s in statuses if 200 <= s < 300) / seconds,
        latency=Latency(
            p50=percentile(latencies, 0.5),
            p90=percentile(latencies, 0.9),
            p99=percentile(latencies, 0.99),
            p999=percentile(latencies, 0.999),
            max=latencies[-1] if latencies else None,
        ),
        requests=len(records),
        errors=failed,
        intended=statuses.count(429),
        offered_rate=rate,
        extra={"key": contender.key, "processes": contender.processes},
    )


def ratios(rows: list[Row]) -> None:
    """Add each Todo API row's ratios to the baseline and the ceiling of its process count."""
    by_key = {(r.extra["key"], r.scenario): r for r in rows}
    for current in rows:
        key = current.extra["key"]
        if not key.startswith("todo-") or current.offered_rate is not None:
            continue
        processes = current.extra["processes"]
        for name, other in (("vs_tutorial", "tutorial"), ("vs_bare", "bare")):
            reference = by_key.get((f"{other}-{processes}", current.scenario))
            if reference is not None and reference.requests_per_second:
                current.extra[name] = current.requests_per_second / reference.requests_per_second
                # The same ratio by CPU time per request: what a busy machine blurs less.
                mine = current.extra["cpu_us_per_request"]
                if mine:
                    current.extra[f"cpu_{name}"] = reference.extra["cpu_us_per_request"] / mine


_RATIOS = ("vs_tutorial", "vs_bare", "cpu_vs_tutorial", "cpu_vs_bare")


def median_rows(rounds: list[list[Row]]) -> list[Row]:
    """Each contender's row of its median round, in the order of the first round.

    A closed-loop row is ranked by 2xx/s, a fixed-rate row by its p99. Each ratio of
    the chosen row is replaced by the median of that ratio over the rounds (each
    measured against the references of its own round); `extra["rounds"]` keeps every
    round's figure and `extra["<ratio>_rounds"]` every round's ratio.
    """
    by_row: dict[tuple[str, str, bool], list[Row]] = {}
    for measured in rounds:
        for current in measured:
            place = (current.extra["key"], current.scenario, current.offered_rate is not None)
            by_row.setdefault(place, []).append(current)
    medians = []
    for (_, _, fixed), same in by_row.items():
        figures = [_p99_or_inf(r) if fixed else r.requests_per_second for r in same]
        middle = sorted(range(len(same)), key=figures.__getitem__)[(len(same) - 1) // 2]
        chosen = same[middle]
        extra = {**chosen.extra, "rounds": figures}
        for name in _RATIOS:
            values = [r.extra[name] for r in same if name in r.extra]
            if len(same) > 1 and len(values) == len(same):
                extra[name] = statistics.median(values)
                extra[f"{name}_rounds"] = values
        medians.append(dataclasses.replace(chosen, extra=extra))
    return medians


def _p99_or_inf(measured: Row) -> float:
    p99 = measured.latency.p99
    return float("inf") if p99 is None else p99


def table(rows: list[Row]) -> str:
    """The rows as the lines the benchmark prints."""
    lines = [
        f"{'contender':<30} {'scenario':<14} {'2xx/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'errors':>6} {'429':>5} {'vs tutorial':>11} {'vs bare':>7} "
        f"{'CPU us/req':>10}"
    ]
    for r in rows:
        tutorial = r.extra.get("vs_tutorial")
        bare = r.extra.get("vs_bare")
        lines.append(
            f"{r.contender:<30} {r.scenario:<14} {r.requests_per_second:>8,.0f} "
            f"{_ms(r.latency.p50):>7} {_ms(r.latency.p99):>7} {_ms(r.latency.p999):>8} "
            f"{r.errors:>6} {r.intended:>5} "
            f"{f'{tutorial:.2f}x' if tutorial else '-':>11} {f'{bare:.0%}' if bare else '-':>7} "
            f"{_us(r.extra.get('cpu_us_per_request')):>10}"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[str]:
    """Issue 16's targets, one line each: the figure of this run and `ok` or `MISSED`."""
    lines = []
    for r in rows:
        key, tutorial, bare = r.extra["key"], r.extra.get("vs_tutorial"), r.extra.get("vs_bare")
        wanted = 3.0 if r.scenario in _READS else 1.5 if r.scenario == "write" else None
        if wanted is not None and tutorial is not None:
            text = f"{key} {r.scenario}: {tutorial:.2f}x the tutorial (>= {wanted:g}x)"
            by_cpu = r.extra.get("cpu_vs_tutorial")
            text += f"; by CPU per request {by_cpu:.2f}x" if by_cpu else ""
            lines.append(_verdict(text, tutorial >= wanted))
        if bare is not None:
            text = f"{key} {r.scenario}: {bare:.0%} of the bare route (>= 50 %)"
            by_cpu = r.extra.get("cpu_vs_bare")
            text += f"; by CPU per request {by_cpu:.0%}" if by_cpu else ""
            if "vs_bare_rounds" in r.extra:
                text += f" (rounds: {', '.join(f'{v:.0%}' for v in r.extra['vs_bare_rounds'])})"
            lines.append(_verdict(text, bare >= 0.5))
    fixed = {r.extra["key"].partition("-")[0]: r for r in rows if r.offered_rate is not None}
    if {"todo", "tutorial"} <= fixed.keys():
        mine, theirs = fixed["todo"].latency.p99, fixed["tutorial"].latency.p99
        if mine is not None and theirs:
            text = (
                f"p99 at {fixed['todo'].offered_rate:g} req/s: {mine:.1f} ms, the tutorial's "
                f"{theirs:.1f} ms ({mine / theirs:.2f}x, < 2x)"
            )
            lines.append(_verdict(text, mine < 2 * theirs))
    failing = sum(1 for r in rows if r.errors)
    lines.append(_verdict(f"rows with errors (non-2xx other than 429): {failing}", not failing))
    return lines


def _verdict(text: str, met: bool) -> str:
    return f"{'ok    ' if met else 'MISSED'} {text}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--quick` shortens every run for a smoke test."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="of load per row")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each row")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="of wrk")
    parser.add_argument(
        "--contenders", default=",".join(c.key for c in CONTENDERS),
        help="comma-separated keys, in the order to run them",
    )  # fmt: skip
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument(
        "--fixed-rate", type=float, default=None,
        help="reads per second offered to tutorial-2 and todo-2 for the p99 comparison "
        f"(default: {_FIXED_SHARE:.0%}% of tutorial-2's read rate, at most {_FIXED_MAX:g}); "
        "0: none",
    )  # fmt: skip
    parser.add_argument("--rate-limit", default="1000000/second", help="of both apps, per client")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/todo_bench",
        help="a database of the benchmark's own: its todos table is emptied",
    )  # fmt: skip
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--port", type=int, default=0,
        help="where the direct contenders listen, one at a time (default: a free port)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=_BENCHMARKS / "results" / "todo_load.json")
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="times the whole sequence runs; a row shows its median round",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 s rows, one round: a smoke run")
    parsed = parser.parse_args(argv)
    if parsed.quick:
        parsed.seconds, parsed.warmup, parsed.rounds = 1.0, 1.0, 1
    if parsed.rounds < 1:
        parser.error("--rounds must be 1 or more")
    known = {c.key for c in CONTENDERS}
    parsed.contenders = [key for key in parsed.contenders.split(",") if key]
    parsed.scenarios = [name for name in parsed.scenarios.split(",") if name]
    unknown = set(parsed.contenders) - known | set(parsed.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown contenders or scenarios: {', '.join(sorted(unknown))}")
    return parsed


async def main(argv: list[str] | None = None) -> Result:
    """Run the benchmark; print the table and the targets; write the JSON file."""
    args = options(argv)
    result = Result(
        benchmark="todo_load",
        metadata=Metadata.collect(
            server=_server(),
            wrk=f"{args.connections} connections, {args.threads} thread(s), "
            f"{args.seconds:g} s per row after {args.warmup:g} s of warm-up",
        ),
    )
    print(result.metadata.describe())
    print(f"every contender on {result.metadata.extra['server']}")
    note = (
        f"rate limits of both apps: {args.rate_limit} per client, so every request pays for "
        "its decision and none is throttled (all clients are 127.0.0.1)"
    )
    result.notes.append(note)
    print(note)
    note = (
        "CPU us/req: CPU time of the contender's own processes per response (uvicorn, and "
        "nginx for the replicas; not Redis, PostgreSQL or wrk)"
    )
    result.notes.append(note)
    print(note)
    logs = Path(tempfile.mkdtemp(prefix="todo-load."))
    setup = Setup(
        database_url=args.database_url,
        redis_url=args.redis_url,
        rate_limit=args.rate_limit,
        secret=secrets.token_urlsafe(32),
        namespace=f"bench-{secrets.token_hex(4)}",
        logs=logs,
        port=args.port,
    )
    # The demo stack reads where PostgreSQL and Redis are from the environment.
    os.environ["TODO_DATABASE_URL"] = args.database_url
    os.environ["TODO_REDIS_URL"] = args.redis_url
    token = setup.token()
    rounds: list[list[Row]] = []
    try:
        await _migrate(setup)
        await seed(args.database_url)
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}")
            measured: list[Row] = []
            # Every round offers the fixed rate the first one derived.
            first = rounds[0] if rounds else measured
            for key in args.contenders:
                contender = next(c for c in CONTENDERS if c.key == key)
                await measure(contender, setup, args, token, result, measured, first)
            ratios(measured)
            rounds.append(measured)
    finally:
        with contextlib.suppress(Exception):
            await _delete_keys(args.redis_url, setup.namespace)
    result.rows.extend(median_rows(rounds))
    if args.rounds > 1:
        note = (
            f"each row: the median of {args.rounds} rounds (by 2xx/s; a fixed-rate row by "
            "p99); each ratio: the median of the ratios measured within each round"
        )
        result.notes.append(note)
        print(f"\n{note}")
    print()
    print(table(result.rows))
    print()
    for line in targets(result.rows):
        print(line)
    result.write(args.json)
    print(f"\nwritten to {args.json}")
    if any(r.errors for r in result.rows):
        print(f"the servers' logs are in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    return result


async def measure(
    contender: Contender,
    setup: Setup,
    args: argparse.Namespace,
    token: str,
    result: Result,
    rows: list[Row],
    first_round: list[Row],
) -> None:
    """Start `contender`, run each of its scenarios (warm-up, then measured), stop it.

    Its rows go to `rows` (the round's); the fixed rate derives from `first_round`'s.
    """
    scenarios = [s for s in args.scenarios if contender.app != "bare" or s in _READS]
    if not scenarios:
        return
    started = time.monotonic()
    async with serving(contender, setup) as served:
        base_url = served.base_url
        print(f"{contender.name}: up in {time.monotonic() - started:.1f} s at {base_url}")
        for scenario in scenarios:
            requests = scenario_requests(scenario, token)
            load = {"connections": args.connections, "threads": args.threads}
            await run(base_url, requests, seconds=args.warmup, **load)
            cpu, degraded = tree_cpu_seconds(served.pids), served.degraded()
            measured = await run(base_url, requests, seconds=args.seconds, **load)
            cpu = tree_cpu_seconds(served.pids) - cpu
            rows.append(row(contender, scenario, measured, cpu))
            print(table(rows[-1:]).splitlines()[1])
            if served.degraded() > degraded:
                note = (
                    f"{contender.key} {scenario}: a primitive lost its backend during the row "
                    "(WARNING '... is degraded' in its log): it served its fallback meanwhile"
                )
                rows[-1].extra["degraded"] = True
                result.notes.append(note)
                print(f"  note: {note}")
        rate = _fixed_rate(args.fixed_rate, first_round)
        if rate and contender.key in _FIXED:
            fixed = await fixed_rate(contender, base_url, rate, args.seconds, args.connections)
            rows.append(fixed)
            print(table(rows[-1:]).splitlines()[1])


def _server() -> str:
    """The server of every contender: uvicorn picks its loop and parser by what is installed."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn {version('uvicorn')} ({loop}, {parser}), starlette {version('starlette')}"


def _fixed_rate(option: float | None, rows: list[Row]) -> float:
    """The fixed rate: the option's, else a share of the baseline's read rate (0: none yet)."""
    if option is not None:
        return option
    reads = [r for r in rows if r.extra["key"] == _FIXED[0] and r.scenario == "read"]
    if not reads:
        return 0.0
    return float(min(_FIXED_MAX, round(_FIXED_SHARE * reads[0].requests_per_second, -1)))


async def _migrate(setup: Setup) -> None:
    """Create the benchmark's database and its schema (`python -m todo migrate`)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "todo", "migrate", env=setup.env(CONTENDERS[0])
    )
    if await process.wait():
        raise SystemExit("python -m todo migrate failed")


if __name__ == "__main__":
    asyncio.run(main())
