"""Faults under load: what the Todo API's clients see while one part of it fails, and after.

Run from the repository root (`tests.support` starts the private servers):

    PYTHONPATH=. .venv/bin/python benchmarks/todo_faults.py --fault all
    PYTHONPATH=. .venv/bin/python benchmarks/todo_faults.py --fault redis-stop --outage 3

Each fault gets a fresh stack (benchmarks/_todo_stack.py): 3 uvicorn replicas behind
nginx and a worker, on a redis-server and a PostgreSQL of its own, under the 90/10
read/write mix from the open-loop client at `--rate` req/s. At `--fault-at` seconds:

- `replica-kill`: kill -9 one replica; `--outage` s later a new one starts on its
  socket. Bound: the failed requests are no more than those in flight at that replica
  when it died, and none is idempotent (nginx passes those to another replica).
- `redis-stop`: kill the redis-server; start it again after `--outage` s. Bound: no
  request fails (reads from each replica's L1 or PostgreSQL, writes commit), the rate
  limiter decides locally (`on_failure="local"`), every replica is ready again and
  reads its own writes on every replica afterwards, and every todo created gets
  exactly one notification: each waited in PostgreSQL's outbox, written with its todo,
  until the worker's relay could enqueue it.
- `postgres-stop`: stop PostgreSQL (fast shutdown); start it after `--outage` s.
  Bound: nothing but 503s with `Retry-After`, the breaker among them, reads of cached
  todos all served, and no failure once it closed again.
- `worker-kill`: kill -9 the worker while it holds jobs; start a new one after
  `--outage` s. Bound: every todo created gets exactly one notification (the killed
  worker's jobs run again once their lease, `--worker-lease` s, expired).

For every fault: no request takes longer than `--hang-bound` s (the app's own
timeouts bound each of its calls), and no request fails in the last `--recovery` s.
It prints a per-second timeline and the checks, writes them in the results format
(benchmarks/_results.py) to `--results`/todo_faults-FAULT.json, and exits 1 when a
check fails. `benchmarks/plots.py` draws the timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx

from _openloop import NO_RESPONSE, OpenLoop, Records, buckets, summary
from _results import Latency, Metadata, Result, Row, Series
from _todo_stack import Mix, Running, failed_rows, failures_per_window, private_stack
from scalepy.queue import Queue

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

_RESULTS = Path(__file__).resolve().parent / "results"
_VICTIM = "app-2"


@dataclass(frozen=True, slots=True)
class Check:
    """One bound, and whether this run kept it."""

    name: str
    ok: bool
    detail: str


@dataclass
class Scene:
    """One fault run: the stack, the load running against it, what happened when."""

    running: Running
    load: OpenLoop
    mix: Mix
    args: argparse.Namespace
    task: asyncio.Task[Records]
    events: list[tuple[float, str]] = field(default_factory=list)
    figures: dict[str, float | int | str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    async def at(self, seconds: float) -> None:
        """Return `seconds` after the load started."""
        await self.load.started.wait()
        await asyncio.sleep(max(0.0, seconds - self.load.elapsed()))

    def event(self, what: str) -> float:
        """Note that `what` happened now; return when."""
        now = round(self.load.elapsed(), 3)
        self.events.append((now, what))
        print(f"  {now:7.3f} s  {what}")
        return now

    async def outage(
        self, stop: Callable[[], None], start: Callable[[], None], server: str
    ) -> tuple[float, float]:
        """Stop a server at `--fault-at`, start it `--outage` s later; when each happened."""
        await self.at(self.args.fault_at)
        await asyncio.to_thread(stop)
        stopped = self.event(f"{server} stopped")
        await self.at(self.args.fault_at + self.args.outage)
        await asyncio.to_thread(start)
        return stopped, self.event(f"{server} started")

    def check(self, name: str, ok: bool, detail: str) -> None:
        """Record a bound's outcome."""
        self.checks.append(Check(name, ok, detail))


async def replica_kill(scene: Scene) -> None:
    """Kill -9 one replica behind nginx; a new process takes its socket after the outage."""
    stack, args = scene.running.stack, scene.args
    await scene.at(args.fault_at)
    victim = stack.child(_VICTIM)
    os.kill(victim.process.pid, signal.SIGKILL)
    killed = scene.event(f"kill -9 {_VICTIM} (pid {victim.process.pid})")
    await victim.process.wait()
    stack.children.remove(victim)
    await scene.at(args.fault_at + args.outage)
    await stack.start_replica(_VICTIM)
    scene.event(f"{_VICTIM} restarted")
    records = await scene.task
    assert stack.nginx_log is not None
    upstreams = _upstreams(stack.nginx_log)
    socket = str(stack.replicas[_VICTIM])
    in_flight = [
        row
        for row in range(len(records))
        if records.started[row] <= killed <= records.ended[row]
        and socket in upstreams.get(scene.mix.request_id(records.index[row]), ("", ""))[0]
    ]
    failed = failed_rows(records)
    passed_on = [
        row for row in in_flight
        if "," in upstreams[scene.mix.request_id(records.index[row])][1] and row not in failed
    ]  # fmt: skip
    scene.figures |= {
        "in flight at the killed replica": len(in_flight),
        "of them passed on to another replica": len(passed_on),
        "failed requests": len(failed),
    }
    scene.check(
        "failed <= in flight at the killed replica",
        set(failed) <= set(in_flight),
        f"{len(failed)} failed, {len(in_flight)} in flight there",
    )
    idempotent_failed = [row for row in failed if records.label_of(row) in {"read", "list"}]
    scene.check(
        "no idempotent request failed (nginx passes them on)",
        not idempotent_failed,
        f"{len(idempotent_failed)} GETs failed",
    )


async def redis_stop(scene: Scene) -> None:
    """Kill the redis-server under the stack; start it again on its port after the outage."""
    running, args = scene.running, scene.args
    stopped, started = await scene.outage(running.redis.stop, running.redis.start, "redis-server")
    await _all_ready(running, within=args.recovery)
    scene.figures["every replica ready again after (s)"] = round(scene.load.elapsed() - started, 3)
    records = await scene.task
    failed = failed_rows(records, records.due(stopped, started))
    scene.figures["failed requests during the outage"] = len(failed)
    scene.check("no request failed while Redis was down", not failed, _statuses(records, failed))
    local = await _metric_total(running, 'result="local"')
    scene.figures["rate-limit decisions taken locally"] = local
    scene.check("the limiter decided locally (on_failure='local')", local > 0, f"{local:g}")
    stale = await _stale_replicas(running, scene.mix)
    scene.check("after it, each replica reads a write made on another", not stale, str(stale))
    await _check_notified_once(scene, records, within=30.0)


async def postgres_stop(scene: Scene) -> None:
    """Stop PostgreSQL (fast shutdown) under the stack; start it again after the outage."""
    postgres = scene.running.postgres
    stopped, started = await scene.outage(postgres.stop, postgres.start, "postgres")
    records = await scene.task
    failed = failed_rows(records)
    not_503 = [row for row in failed if records.status[row] != 503]
    breaker = [row for row in failed if b'"breaker":"postgres"' in records.answers.get(row, b"")]
    without_retry_after = [
        row for row in breaker if b"retry-after:" not in records.answers[row].lower()
    ]
    reads = [row for row in records.due(stopped, started) if records.label_of(row) == "read"]
    unserved = failed_rows(records, reads)
    scene.figures |= {
        "503 answers": len(failed) - len(not_503),
        "of them from the open breaker (the others, before it opened, say no Retry-After: "
        "no honest estimate)": len(breaker),
        "cached reads during the outage": len(reads),
        "last failure after the restart (s)": _recovered_after(records, started),
    }
    scene.check(
        "every failure is a 503",
        not not_503,
        _statuses(records, not_503) + _samples(records, not_503),
    )
    scene.check(
        "every 503 of the open breaker carries Retry-After",
        not without_retry_after,
        f"{len(without_retry_after)}" + _samples(records, without_retry_after),
    )
    scene.check("the breaker opened", bool(breaker), f"{len(breaker)} answers from it")
    scene.check(
        "cached reads served throughout",
        not unserved,
        f"{len(unserved)} of {len(reads)} failed" + _samples(records, unserved),
    )


async def worker_kill(scene: Scene) -> None:
    """Kill -9 the worker while it holds jobs; a new worker starts after the outage."""
    running, args = scene.running, scene.args
    stack = running.stack
    await scene.at(args.fault_at)
    async with Queue(running.redis.url, name=stack.env["TODO_NAMESPACE"]) as queue:
        active = await _until_active(queue, within=args.outage)
    worker = stack.child("worker")
    os.kill(worker.process.pid, signal.SIGKILL)
    scene.event(f"kill -9 the worker (pid {worker.process.pid}) holding {active} jobs")
    await worker.process.wait()
    stack.children.remove(worker)
    await scene.at(args.fault_at + args.outage)
    await stack.start_worker()
    scene.event("worker started")
    records = await scene.task
    scene.figures["jobs leased at the kill"] = active
    await _check_notified_once(scene, records, within=args.worker_lease + 30)


FAULTS: dict[str, Callable[[Scene], Awaitable[None]]] = {
    "replica-kill": replica_kill,
    "redis-stop": redis_stop,
    "postgres-stop": postgres_stop,
    "worker-kill": worker_kill,
}


def _logged_errors(logs: Path) -> Counter[str]:
    """The last line of every traceback in the processes' logs (what they raised), counted."""
    found: Counter[str] = Counter()
    for log in logs.glob("*.log"):
        lines = log.read_text(errors="replace").splitlines()
        for number, line in enumerate(lines):
            if line.startswith("Traceback") and not line.endswith("(most recent call last):"):
                continue
            if line.startswith("Traceback"):
                end = next(
                    (n for n in range(number + 1, len(lines)) if not lines[n].startswith(" ")),
                    len(lines) - 1,
                )
                found[f"{log.stem}: {lines[end][:200]}"] += 1
    return found


def _upstreams(log: Path) -> dict[str, tuple[str, str]]:
    """Request id -> (`upstream`, `upstream_status`) from nginx's JSON access log."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            found[entry["request_id"]] = (entry["upstream"], entry["upstream_status"])
    return found


async def _all_ready(running: Running, *, within: float) -> None:
    """Return once every replica answers `/health/ready` 200, or `within` s passed.

    Polled: another process's state sends no event.
    """
    deadline = time.monotonic() + within
    for socket in running.stack.replicas.values():
        transport = httpx.AsyncHTTPTransport(uds=str(socket))
        async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
            while (await client.get("http://replica/health/ready")).status_code != 200:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)


async def _metric_total(running: Running, selector: str) -> float:
    """The sum over every replica of the `/metrics` samples whose line holds `selector`."""
    total = 0.0
    for socket in running.stack.replicas.values():
        transport = httpx.AsyncHTTPTransport(uds=str(socket))
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
            text = (await client.get("http://replica/metrics")).text
        total += sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if selector in line and not line.startswith("#") and "_created" not in line
        )
    return total


async def _stale_replicas(running: Running, mix: Mix) -> list[str]:
    """Change a todo through nginx, then read it on each replica; those that read it old."""
    todo_id = mix.write_ids[0]
    title = f"after the fault {uuid.uuid4().hex[:8]}"
    headers = {"authorization": f"Bearer {running.token}"}
    async with httpx.AsyncClient(base_url=running.stack.base_url, timeout=10.0) as client:
        for socket in running.stack.replicas.values():  # cached everywhere first
            await _read_title(socket, todo_id)
        response = await client.patch(f"/todos/{todo_id}", json={"title": title}, headers=headers)
        response.raise_for_status()
    return [
        name
        for name, socket in running.stack.replicas.items()
        if await _read_title(socket, todo_id) != title
    ]


async def _read_title(socket: Path, todo_id: int) -> str:
    transport = httpx.AsyncHTTPTransport(uds=str(socket))
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        response = await client.get(f"http://replica/todos/{todo_id}")
    title: str = response.json().get("title", f"status {response.status_code}")
    return title


async def _until_active(queue: Queue, *, within: float) -> int:
    """How many jobs are leased, once some are (polled: the worker sends no event)."""
    deadline = time.monotonic() + within
    while True:
        active = (await queue.stats()).active
        if active or time.monotonic() > deadline:
            return active
        await asyncio.sleep(0.005)


async def _check_notified_once(scene: Scene, records: Records, *, within: float) -> None:
    """Check that every todo the run created (a 201) has exactly one notification.

    Waits up to `within` s for the last ones; the figures say when they all were
    (on the run's clock, counted after the load ended: an upper bound) and how many
    went missing or came twice.
    """
    created = sum(1 for row in range(len(records)) if records.status[row] == 201)
    counts = await _notifications(scene.running, scene.mix.run, within=within)
    complete = len(counts) == created and set(counts) <= {1}
    done = scene.event("every created todo notified") if complete else None
    missing = created - len(counts)
    several = sum(1 for count in counts if count > 1)
    scene.figures |= {
        "todos created": created,
        "notifications lost": missing,
        "notifications sent twice": several,
        "all notified at (s into the run)": "never" if done is None else done,
    }
    scene.check(
        "every todo created has exactly one notification",
        complete,
        f"{created} created, {len(counts)} with notifications, {missing} without, "
        f"{several} with several",
    )


async def _notifications(running: Running, run: str, *, within: float) -> list[int]:
    """Notifications per todo the run created, once each has one or `within` s passed."""
    connection = await asyncpg.connect(running.database_url)
    deadline = time.monotonic() + within
    try:
        while True:
            rows = await connection.fetch(
                """SELECT count(n.job_id) AS n FROM todos t
                   LEFT JOIN notifications n ON n.todo_id = t.id
                   WHERE t.title LIKE $1 || ' %' GROUP BY t.id""",
                run,
            )
            counts = [row["n"] for row in rows]
            if 0 not in counts or time.monotonic() > deadline:
                return [count for count in counts if count]
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


def _recovered_after(records: Records, started: float) -> float:
    """Seconds from `started` to the due time of the last request that failed (0: none after)."""
    last = max((records.scheduled[row] for row in failed_rows(records)), default=started)
    return round(max(0.0, last - started), 3)


def _samples(records: Records, rows: Sequence[int], count: int = 2) -> str:
    """The first answers (or errors) of `rows`, for the detail of a failed check."""
    shown = []
    for row in rows[:count]:
        head, _, body = records.answers.get(row, b"").partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        shown.append(records.errors.get(row) or (status + b" " + body).decode(errors="replace"))
    return "".join(f"\n      {text.strip()[:300]}" for text in shown)


def _statuses(records: Records, rows: Sequence[int]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        key = str(records.status[row]) if records.status[row] != NO_RESPONSE else "no response"
        key = f"{records.label_of(row)} {key}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key}: {count}" for key, count in sorted(counts.items())) or "none"


async def run_fault(name: str, args: argparse.Namespace) -> tuple[Result, list[Check]]:
    """One fault on a fresh stack under load: its result (timeline, figures), its checks."""
    print(f"== {name}: {args.rate:g} req/s, fault at {args.fault_at:g} s for {args.outage:g} s")
    async with private_stack(
        port_base=args.port_base or None, worker_options=("--lease", f"{args.worker_lease:g}")
    ) as running:
        mix = Mix(
            read_ids=await running.seed(200, "read"),
            write_ids=await running.seed(100, "write"),
            token=running.token,
            run=f"faults-{uuid.uuid4().hex[:8]}",
        )
        load = OpenLoop(running.target, mix, rate=args.rate, timeout=args.timeout)
        duration = args.fault_at + args.outage + 2 * args.recovery
        scene = Scene(running, load, mix, args, asyncio.create_task(load.run(duration)))
        try:
            await FAULTS[name](scene)
        finally:
            scene.task.cancel()
        records = scene.task.result()
        logged = _logged_errors(running.stack.logs)
        if args.logs:
            shutil.copytree(running.stack.logs, args.logs / name, dirs_exist_ok=True)
    slowest = max((records.latency(row) for row in range(len(records))), default=0.0)
    scene.check(
        f"no request took over {args.hang_bound:g} s", slowest <= args.hang_bound,
        f"slowest {slowest:.3f} s",
    )  # fmt: skip
    late = failed_rows(records, records.due(duration - args.recovery))
    scene.check(
        f"no failure in the last {args.recovery:g} s (recovered by itself)",
        not late,
        _statuses(records, late),
    )
    failures = failures_per_window(records, 1.0)
    timeline = [
        {
            "t": bucket.start,
            "sent": bucket.sent,
            "failed": failures[n],
            "p50_ms": round(bucket.p50 * 1000, 2),
            "p99_ms": round(bucket.p99 * 1000, 2),
            "max_ms": round(bucket.max * 1000, 2),
            "client_lag_p99_ms": round(bucket.lag_p99 * 1000, 2),
        }
        for n, bucket in enumerate(buckets(records, width=1.0))
    ]
    _print(timeline, scene)
    for error, count in logged.most_common():
        print(f"  logged {count} x {error}")
    return _result(name, args, scene, timeline), scene.checks


def _result(
    name: str, args: argparse.Namespace, scene: Scene, timeline: list[dict[str, float]]
) -> Result:
    """The run in the results format: one row, the timeline as series, the checks as notes."""
    records = scene.load.records
    whole = summary(records, range(len(records)), start=0.0, width=timeline[-1]["t"] + 1)
    failed = len(failed_rows(records))
    result = Result(
        benchmark=f"todo_faults-{name}",
        metadata=Metadata.collect(
            fault_at=args.fault_at, outage=args.outage, stack="3 uvicorn replicas behind nginx, "
            "a worker, a private redis-server and PostgreSQL (benchmarks/_todo_stack.py)",
        ),
    )  # fmt: skip
    result.rows.append(
        Row(
            contender="todo",
            scenario=name,
            requests_per_second=(whole.sent - failed) / whole.width,
            latency=Latency(p50=whole.p50 * 1000, p99=whole.p99 * 1000, max=whole.max * 1000),
            requests=whole.sent,
            errors=failed,
            offered_rate=args.rate,
            extra={"figures": scene.figures, "checks": [asdict(check) for check in scene.checks]},
        )
    )
    seconds = [second["t"] for second in timeline]
    for key, series, unit in (
        ("p99_ms", "p99 latency", "ms"),
        ("p50_ms", "p50 latency", "ms"),
        ("sent", "requests due", "req/s"),
        ("failed", "failed", "req/s"),
    ):
        points = list(zip(seconds, [second[key] for second in timeline], strict=True))
        result.series.append(Series(name=series, unit=unit, points=points, events=scene.events))
    result.notes += [
        f"[{'ok' if check.ok else 'FAILED'}] {check.name}: {check.detail}" for check in scene.checks
    ]
    return result


def _print(timeline: list[dict[str, float]], scene: Scene) -> None:
    print("     t   sent  failed   p50 ms   p99 ms   max ms")
    events = sorted(scene.events)
    for second in timeline:
        marks = "; ".join(what for when, what in events if second["t"] <= when < second["t"] + 1)
        print(
            f"{second['t']:6.0f} {second['sent']:6.0f} {second['failed']:7.0f} "
            f"{second['p50_ms']:8.1f} {second['p99_ms']:8.1f} {second['max_ms']:8.1f}  {marks}"
        )
    for name, value in scene.figures.items():
        print(f"  {name}: {value}")
    for check in scene.checks:
        print(f"  [{'ok' if check.ok else 'FAILED'}] {check.name}: {check.detail}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=[*FAULTS, "all"], default="all")
    parser.add_argument("--rate", type=float, default=300.0, help="req/s offered (300)")
    parser.add_argument("--fault-at", type=float, default=5.0, help="s into the load (5)")
    parser.add_argument("--outage", type=float, default=10.0, help="s the part is down (10)")
    parser.add_argument("--recovery", type=float, default=5.0, help="s that must be clean (5)")
    parser.add_argument("--hang-bound", type=float, default=5.0, help="slowest request (5 s)")
    parser.add_argument("--timeout", type=float, default=30.0, help="client timeout (30 s)")
    parser.add_argument(
        "--worker-lease", type=float, default=30.0, help="the worker's --lease (30, its default)"
    )
    parser.add_argument(
        "--port-base", type=int, default=19000, help="nginx; Redis +1, PG +2; 0: free ports"
    )
    parser.add_argument(
        "--results", type=Path, default=_RESULTS, help="JSON goes there (benchmarks/results)"
    )
    parser.add_argument("--logs", type=Path, help="keep every process's log there (DIR/FAULT)")
    return parser.parse_args(argv)


async def main(argv: Sequence[str]) -> int:
    """Run the chosen faults one after the other; 1 if any check failed."""
    args = parse_args(argv)
    names = list(FAULTS) if args.fault == "all" else [args.fault]
    failed = []
    for name in names:
        result, checks = await run_fault(name, args)
        path = args.results / f"{result.benchmark}.json"
        result.write(path)
        print(f"  written to {path}")
        failed += [f"{name}: {check.name}" for check in checks if not check.ok]
    print("every check passed" if not failed else "FAILED:\n  " + "\n  ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
