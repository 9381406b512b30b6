"""`python -m demo`: the Todo API stack on this machine, a tour of it, then nothing left running.

Run through scripts/demo.sh, which sets up .venv, the local services and nginx first and
documents the options. SIGINT, SIGTERM and SIGHUP stop everything the demo started,
at any point; so does any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import httpx

from demo.load import UNTHROTTLED, SteadyLoad
from demo.processes import ChildFailed
from demo.prometheus import ALERT_RULES, Prometheus
from demo.rolling import rolling_restart
from demo.stack import Options, Stack
from demo.tour import Result, Tour

_TOKEN_TTL = 3600
_LOAD_CLIENTS = 20


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options scripts/demo.sh documents."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh", description="The Todo API stack on this machine, and a tour."
    )
    parser.add_argument("--replicas", type=_at_least_one, default=3, metavar="N")
    parser.add_argument("--port", type=_port, default=8080)
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--single", action="store_true", help="one process, no Redis, no nginx")
    shape.add_argument(
        "--prometheus", action="store_true", help="and Prometheus scraping every process"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--serve", action="store_true", help="keep it running until Ctrl-C")
    mode.add_argument("--check", action="store_true", help="CI: the tour's summary only")
    mode.add_argument(
        "--rolling-restart",
        action="store_true",
        help="replace every replica, one at a time, under steady load; then stop",
    )
    args = parser.parse_args(argv)
    if args.rolling_restart and args.single:
        parser.error("--rolling-restart needs replicas behind nginx, not --single")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the exit status is 0 only if every step of the tour passed."""
    return asyncio.run(_supervised(parse_args(sys.argv[1:] if argv is None else argv)))


async def _supervised(args: argparse.Namespace) -> int:
    """Run the demo; the first signal cancels it (which stops everything), later ones wait."""
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def on_signal(signum: signal.Signals) -> None:
        if received:
            _say(f"{signum.name}: still stopping, one moment")
            return
        received.append(signum)
        _say(f"{signum.name}: stopping everything")
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await _demo(args)
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        return 0 if args.serve and received[0] is signal.SIGINT else 128 + received[0]


async def _demo(args: argparse.Namespace) -> int:
    options = Options(
        replicas=args.replicas,
        port=args.port,
        single=args.single,
        settings=UNTHROTTLED if args.rolling_restart else {},
    )
    stack = Stack(options, say=(lambda _: None) if args.check else _say)
    started = time.monotonic()
    try:
        await stack.start()
        shape = "one process" if args.single else f"nginx -> {args.replicas} replicas, 1 worker"
        _say(f"up in {time.monotonic() - started:.1f} s: {stack.base_url} ({shape})")
        prometheus = Prometheus(stack) if args.prometheus else None
        if prometheus is not None:
            await prometheus.start()
        if args.serve:
            return await _serve(stack, prometheus)
        if args.rolling_restart:
            return await _rolling_restart(stack)
        status = await _tour(stack)
        if not args.check:
            _say("scripts/demo.sh --serve keeps it running, to try it yourself")
        return status
    except ChildFailed as exc:
        print(f"demo: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stopped = await stack.stop()
        if stopped:
            _say(f"stopped {', '.join(reversed(stopped))} and the relay; removed {stack.run_dir}")


async def _tour(stack: Stack) -> int:
    started = time.monotonic()
    _say(f"tour of {stack.base_url}:")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as client:
        results = await Tour(stack, client).run(_print_result)
    passed = sum(result.ok for result in results)
    verdict = "OK" if passed == len(results) else "FAILED"
    _say(f"tour {verdict}: {passed}/{len(results)} steps in {time.monotonic() - started:.1f} s")
    return 0 if passed == len(results) else 1


async def _rolling_restart(stack: Stack) -> int:
    """Replace every replica under steady load; exit 0 if no request failed or got lost."""
    token = await stack.mint_token("todos:write")
    _say(f"rolling restart of {len(stack.replicas)} replicas, {_LOAD_CLIENTS} clients busy:")
    async with SteadyLoad(stack.base_url, token, clients=_LOAD_CLIENTS) as load:
        replaced = await rolling_restart(stack)
    outcomes = load.outcomes
    for replica in replaced:
        _say(
            f"  {replica.name}: pid {replica.old_pid} -> {replica.new_pid} "
            f"in {replica.seconds:.1f} s"
        )
    statuses = ", ".join(
        f"{count} x {status}" for status, count in sorted(outcomes.statuses.items())
    )
    _say(f"{outcomes.requests} requests meanwhile ({statuses}): {len(outcomes.failures)} failed")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0) as client:
        unreadable = await outcomes.unreadable(client)
    _say(f"{len(outcomes.written)} todos written, {len(unreadable)} not read back as written")
    for line in [*outcomes.failures, *unreadable]:
        print(f"  {line}", flush=True)
    return 0 if not outcomes.failures and not unreadable else 1


async def _serve(stack: Stack, prometheus: Prometheus | None) -> int:
    token = await stack.mint_token("todos:write", ttl=_TOKEN_TTL)
    base = stack.base_url
    logs = ", ".join(sorted(path.name for path in stack.logs.glob("*.log")))
    print(
        f"""
  API       {base}/todos   (OpenAPI 3.1: {base}/openapi.json)
  health    {base}/health/live  {base}/health/ready  {base}/health/startup
  metrics   {base}/metrics
  token     export TOKEN={token}
            (scope todos:write, valid {_TOKEN_TTL // 60} min)
  try       curl -si {base}/todos -H "Authorization: Bearer $TOKEN" \\
                 -H 'Content-Type: application/json' -d '{{"title": "Hello"}}'
  logs      {stack.logs}/ ({logs}){_prometheus_lines(prometheus)}

Serving until Ctrl-C.""",
        flush=True,
    )
    return await _watch(stack)


def _prometheus_lines(prometheus: Prometheus | None) -> str:
    """Where Prometheus answers, for `--serve --prometheus`."""
    if prometheus is None:
        return ""
    return (
        f"\n  alerts    {prometheus.url}/classic/alerts   (rules: {ALERT_RULES.name})"
        f"\n  query     {prometheus.url}/classic/graph"
    )


async def _watch(stack: Stack) -> int:
    """Serve until a signal, or until nginx or the last app process exits.

    A replica or the worker may exit meanwhile (kill one: nginx routes around it).
    """
    waiting = {asyncio.ensure_future(child.process.wait()): child for child in stack.children}
    try:
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                child = waiting.pop(finished)
                apps = [other for other in waiting.values() if other.name.startswith("app")]
                if child.name == "nginx" or not apps:
                    print(
                        f"demo: error: {child.name} exited; last lines:\n{child.tail()}",
                        file=sys.stderr,
                    )
                    return 1
                _say(
                    f"{child.name} exited with status {child.process.returncode}; "
                    "the rest keeps serving"
                )
    finally:
        for waiter in waiting:
            waiter.cancel()


def _print_result(result: Result) -> None:
    print(f"  {'OK  ' if result.ok else 'FAIL'}  {result.step:<17} {result.figure}", flush=True)


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
