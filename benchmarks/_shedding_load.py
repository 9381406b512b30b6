"""Open-loop runs of the shedding benchmark app under uvicorn: overload and capacity halving.

Each run starts a fresh uvicorn process (`_shedding_app`, one worker, on a port of
its own), measures what it is asked to, and stops it. The load comes from
`_openloop.OpenLoop`: requests leave on schedule whether or not earlier ones were
answered, and latency counts from the due time. One request in `PROBE_EVERY` is a
readiness probe, the rest `GET /work`.

Figures:
- capacity: `GET /work` answered per second by a closed loop of `CLOSED_LOOP`
  connections, no shedder (the server's saturated throughput);
- goodput: `/work` answered 2xx within the 1 s SLO, per second of the run;
- p99: of the `/work` requests served (2xx), in ms; the unloaded p99 is that of a
  run at `UNLOADED` x capacity with the shedder;
- probes: how many answered 200 (all of them, when the shedder works).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _openloop import OpenLoop, Request, Target, _response, percentile
from _results import Latency, Row, Series

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from _openloop import Records

SLO = 1.0  # seconds: a 2xx later than this does not count as goodput
PROBE_EVERY = 50
CLOSED_LOOP = 16
UNLOADED = 0.25
WARMUP = 2.0  # seconds at the start of a run left out of the figures (the limit settles)
_HERE = Path(__file__).resolve().parent
_WORK = Request("GET", "/work", label="work")
_PROBE = Request("GET", "/health/ready", label="probe")


@dataclass(frozen=True, slots=True)
class App:
    """How the benchmark app is started."""

    port: int
    cpu_ms: float = 10.0
    db_slots: int = 4
    db_ms: float = 8.0
    tolerance: float = 1.5
    """The shedder's `Gradient.tolerance`."""

    def environment(self, *, shed: bool) -> dict[str, str]:
        """The app's environment variables."""
        return {
            **os.environ,
            "SHED": "1" if shed else "0",
            "CPU_MS": str(self.cpu_ms),
            "DB_SLOTS": str(self.db_slots),
            "DB_MS": str(self.db_ms),
            "TOLERANCE": str(self.tolerance),
        }


@contextlib.asynccontextmanager
async def serve(app: App, *, shed: bool) -> AsyncIterator[Target]:
    """Run the app under uvicorn until the block exits; yield where it listens."""
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "_shedding_app:create_app",
        "--port", str(app.port), "--log-level", "warning", "--no-access-log",
        "--backlog", "4096",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, cwd=_HERE, env=app.environment(shed=shed)
    )
    target = Target(port=app.port)
    try:
        await _until_ready(target, process)
        yield target
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _until_ready(target: Target, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the app exited with {process.returncode}")
        with contextlib.suppress(OSError):
            if (await _call(target, _PROBE))[0] == 200:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the app did not answer within 20 s")


async def _call(target: Target, request: Request) -> tuple[int, bytes]:
    """One request on a connection of its own: status and body."""
    reader, writer = await target.connect()
    try:
        writer.write(request.encode(target.host))
        status, _, body, _ = await _response(reader, request.method)
        return status, body
    finally:
        writer.transport.abort()


async def capacity(target: Target, seconds: float) -> float:
    """`/work` answered per second by `CLOSED_LOOP` back-to-back connections."""
    deadline = time.monotonic() + seconds
    answered = 0

    async def connection() -> None:
        nonlocal answered
        reader, writer = await target.connect()
        try:
            while time.monotonic() < deadline:
                writer.write(_WORK.encode(target.host))
                status, _, _, _ = await _response(reader, "GET")
                answered += status == 200
        finally:
            writer.transport.abort()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(CLOSED_LOOP)))
    return answered / (time.monotonic() - started)


def source(index: int) -> Request:
    """Request `index` of a run: a probe every `PROBE_EVERY`, work otherwise."""
    return _PROBE if index % PROBE_EVERY == 0 else _WORK


async def offer(target: Target, rate: float, seconds: float) -> Records:
    """An open-loop run at `rate` requests per second."""
    return await OpenLoop(target, source, rate=rate, max_connections=2048, timeout=5.0).run(seconds)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run's figures say, after the warm-up."""

    goodput: float
    """`/work` answered 2xx within the SLO, per second."""
    served_p50: float
    served_p99: float
    """Of the 2xx `/work` answers, in seconds."""
    shed: int
    """`/work` answered 503."""
    failed: int
    """`/work` with no answer or another status."""
    probes: int
    probes_ok: int

    def row(self, contender: str, scenario: str, rate: float) -> Row:
        """The outcome in the shared results format."""
        return Row(
            contender=contender,
            scenario=scenario,
            requests_per_second=self.goodput,
            latency=Latency(p50=self.served_p50 * 1000, p99=self.served_p99 * 1000),
            errors=self.failed,
            intended=self.shed,
            offered_rate=rate,
            extra={"probes": self.probes, "probes_ok": self.probes_ok},
        )


def outcome(records: Records, seconds: float) -> Outcome:
    """Goodput, served latency, shed and failed work, and probes, past the warm-up."""
    rows = [row for row in range(len(records)) if records.scheduled[row] >= WARMUP]
    work = [row for row in rows if records.label_of(row) == "work"]
    served = sorted(records.latency(row) for row in work if 200 <= records.status[row] < 300)
    good = sum(1 for latency in served if latency <= SLO)
    probes = [row for row in rows if records.label_of(row) == "probe"]
    return Outcome(
        goodput=good / (seconds - WARMUP),
        served_p50=percentile(served, 0.5),
        served_p99=percentile(served, 0.99),
        shed=sum(1 for row in work if records.status[row] == 503),
        failed=sum(1 for row in work if not 200 <= records.status[row] < 300)
        - sum(1 for row in work if records.status[row] == 503),
        probes=len(probes),
        probes_ok=sum(1 for row in probes if records.status[row] == 200),
    )


async def sample_stats(target: Target, every: float, into: list[tuple[float, dict[str, float]]],
                       origin: float) -> None:  # fmt: skip
    """Poll `/control/stats` every `every` seconds, appending `(time, stats)` until cancelled."""
    stats = Request("GET", "/control/stats")
    while True:
        with contextlib.suppress(OSError, ValueError):
            status, body = await _call(target, stats)
            if status == 200:
                into.append((time.monotonic() - origin, json.loads(body)))
        await asyncio.sleep(every)


def per_second(records: Records, seconds: float) -> tuple[Series, Series]:
    """Goodput and p99 of served `/work` per second of a run, as series."""
    goodput = Series(name="goodput", unit="req/s")
    p99 = Series(name="p99 of served requests", unit="ms")
    for second in range(int(seconds)):
        work = [
            row
            for row in range(len(records))
            if second <= records.scheduled[row] < second + 1 and records.label_of(row) == "work"
        ]
        served = sorted(records.latency(row) for row in work if 200 <= records.status[row] < 300)
        goodput.points.append((second + 0.5, float(sum(1 for value in served if value <= SLO))))
        p99.points.append((second + 0.5, percentile(served, 0.99) * 1000))
    return goodput, p99
