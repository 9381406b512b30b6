"""Load shedding benchmarks: overhead, open-loop overload, capacity halving (issue 19).

Run:

    .venv/bin/python benchmarks/shedding.py overhead [--calls 200000] [--rounds 7]
    .venv/bin/python benchmarks/shedding.py openloop [--seconds 20] [--port 20100]
    .venv/bin/python benchmarks/shedding.py halving [--seconds 45] [--port 20100]

- `overhead`: what the shedder adds to an unloaded call and HTTP request, beside
  the bulkhead, in-process (target: <= 2 us).
- `openloop`: the benchmark app (`_shedding_app`: 10 ms of CPU and an 8 ms call to a
  dependency with 4 connections per request, one uvicorn worker) at 0.25x, 1x, 2x
  and 4x its measured capacity, with and without `LoadShedMiddleware`. Targets, with
  the shedder: goodput >= 90 % of capacity at 2x and 4x, p99 of served requests <=
  3x the unloaded (0.25x) p99, every probe answered 200.
- `halving`: with the shedder, at `--load` x capacity, the dependency becomes slow
  enough a third of the way in to halve capacity; the limit, in-flight calls,
  goodput and p99 are sampled over time (a timeline plot with `--plots`).

Each command writes its `_results.Result` JSON under `--out` (default `results/`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import _shedding_overhead
from _openloop import Request, Target
from _results import Metadata, Result, Series
from _shedding_load import (
    UNLOADED,
    App,
    _call,
    capacity,
    offer,
    outcome,
    per_second,
    sample_stats,
    serve,
)

MULTIPLES = (UNLOADED, 1.0, 2.0, 4.0)
GOODPUT_TARGET = 0.9  # of capacity, at 2x and 4x
P99_TARGET = 3.0  # x the unloaded p99


def _app(options: argparse.Namespace) -> App:
    return App(
        port=options.port,
        cpu_ms=options.cpu_ms,
        db_slots=options.db_slots,
        db_ms=options.db_ms,
        tolerance=options.tolerance,
    )


async def _capacity(app: App, options: argparse.Namespace) -> float:
    if options.capacity:
        return float(options.capacity)
    async with serve(app, shed=False) as target:
        await capacity(target, 1.0)  # warm up
        return await capacity(target, options.calibrate)


async def openloop(options: argparse.Namespace) -> None:
    """1x, 2x, 4x capacity (and the unloaded 0.25x), with and without the shedder."""
    app = _app(options)
    cap = await _capacity(app, options)
    result = Result(benchmark="shedding-openloop", metadata=Metadata.collect(capacity=cap))
    print(result.metadata.describe())
    print(f"capacity (closed loop, {options.calibrate:g} s, no shedder): {cap:.1f} req/s")
    print(f"{'run':<24} {'offered':>8} {'goodput':>8} {'%cap':>6} {'p50 ms':>8} {'p99 ms':>8}"
          f" {'503':>6} {'failed':>6} {'probes ok':>10}")  # fmt: skip
    outcomes = {}
    for multiple in MULTIPLES:
        for shed in (True, False):
            async with serve(app, shed=shed) as target:
                records = await offer(target, multiple * cap, options.seconds)
            out = outcomes[multiple, shed] = outcome(records, options.seconds)
            name = f"{multiple:g}x, {'with' if shed else 'without'} shedder"
            result.rows.append(
                out.row("with shedder" if shed else "without", f"{multiple:g}x", multiple * cap)
            )
            print(f"{name:<24} {multiple * cap:>8.0f} {out.goodput:>8.1f} "
                  f"{100 * out.goodput / cap:>5.0f}% {1000 * out.served_p50:>8.1f} "
                  f"{1000 * out.served_p99:>8.1f} {out.shed:>6} {out.failed:>6} "
                  f"{out.probes_ok:>4}/{out.probes:<5}")  # fmt: skip
    unloaded = outcomes[UNLOADED, True].served_p99
    for multiple in (2.0, 4.0):
        out = outcomes[multiple, True]
        good = out.goodput >= GOODPUT_TARGET * cap
        fast = out.served_p99 <= P99_TARGET * unloaded
        probes = out.probes_ok == out.probes
        print(f"target at {multiple:g}x with the shedder: goodput {out.goodput / cap:.0%} of "
              f"capacity ({'met' if good else 'NOT met'}), p99 {out.served_p99 / unloaded:.1f}x "
              f"unloaded ({'met' if fast else 'NOT met'}), probes "
              f"{'all 200' if probes else 'NOT all 200'}")  # fmt: skip
    result.write(options.out / "shedding-openloop.json")


async def halving(options: argparse.Namespace) -> None:
    """Capacity halves a third of the way in (a slower dependency); sample the limit."""
    app = _app(options)
    cap = await _capacity(app, options)
    slow_ms = app.db_slots * 1000 / (cap / 2)  # the dependency alone then allows cap / 2
    rate = options.load * cap
    result = Result(
        benchmark="shedding-halving",
        metadata=Metadata.collect(capacity=cap, slow_db_ms=slow_ms, rate=rate),
    )
    print(result.metadata.describe())
    print(f"capacity {cap:.1f} req/s; offered {rate:.0f} req/s; at {options.seconds / 3:.0f} s "
          f"the dependency goes from {app.db_ms:g} to {slow_ms:.0f} ms "
          f"(capacity {cap / 2:.0f})")  # fmt: skip
    stats: list[tuple[float, dict[str, float]]] = []
    async with serve(app, shed=True) as target:
        origin = time.monotonic()
        sampler = asyncio.create_task(sample_stats(target, 0.25, stats, origin))
        injector = asyncio.create_task(_inject(target, options.seconds / 3, slow_ms))
        records = await offer(target, rate, options.seconds)
        sampler.cancel()
        await asyncio.gather(sampler, injector, return_exceptions=True)
    event = (options.seconds / 3, f"dependency {slow_ms / app.db_ms:.0f}x slower")
    limit = Series(name="concurrency limit", unit="calls", events=[event])
    in_flight = Series(name="in flight", unit="calls", events=[event])
    for at, values in stats:
        limit.points.append((at, values["limit"]))
        in_flight.points.append((at, values["in_flight"]))
    goodput, p99 = per_second(records, options.seconds)
    result.series += [limit, in_flight, goodput, p99]
    for series in (goodput, p99):
        series.events.append(event)
    print(f"{'s':>4} {'limit':>7} {'goodput':>8} {'p99 ms':>8}")
    limits = {int(at): value for at, value in limit.points}
    for (at, good), (_, late) in zip(goodput.points, p99.points, strict=True):
        print(f"{int(at):>4} {limits.get(int(at), float('nan')):>7.1f} {good:>8.0f} {late:>8.1f}")
    result.write(options.out / "shedding-halving.json")
    if options.plots:
        from plots import save  # matplotlib only when plots are asked for

        for path in save(result, options.plots):
            print(path)


async def _inject(target: Target, after: float, slow_ms: float) -> None:
    await asyncio.sleep(after)
    await _call(target, Request("POST", f"/control/db_ms?{slow_ms}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _shedding_overhead.add_options(commands.add_parser("overhead", help="in-process overhead"))
    for name, seconds in (("openloop", 20.0), ("halving", 45.0)):
        command = commands.add_parser(name)
        command.add_argument("--seconds", type=float, default=seconds)
        command.add_argument("--port", type=int, default=20100)
        command.add_argument("--cpu-ms", type=float, default=10.0)
        command.add_argument("--db-slots", type=int, default=4)
        command.add_argument("--db-ms", type=float, default=8.0)
        command.add_argument("--tolerance", type=float, default=1.5, help="Gradient's")
        command.add_argument("--calibrate", type=float, default=5.0, help="capacity run, s")
        command.add_argument("--capacity", type=float, help="skip the capacity run: req/s")
        command.add_argument("--out", type=Path, default=Path("results"))
    halving_options = commands.choices["halving"]
    halving_options.add_argument("--load", type=float, default=1.0, help="x capacity")
    halving_options.add_argument("--plots", type=Path, help="write the timeline SVG here")
    options = parser.parse_args()
    run = {"overhead": _shedding_overhead.run, "openloop": openloop, "halving": halving}
    asyncio.run(run[options.command](options))


if __name__ == "__main__":
    main()
