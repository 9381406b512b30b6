"""`python -m todo_backend_spec`: the Todo-Backend spec suite in Chromium against the demo stack.

Run through scripts/todo_spec.sh, which installs what this needs (nginx, Chromium,
Playwright) and documents the options. Brings the stack up exactly as
`scripts/demo.sh --serve` does (`demo.stack.Stack`: nginx in front of the replicas,
a worker), with `TODO_AUTH=none` and the page's origin as the one CORS origin, opens
the suite's page in Chromium aimed at nginx's `/todos`, prints each spec and
`N passed, M failed`, and stops everything. Exit status 0 only if every spec passed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from demo.load import UNTHROTTLED
from demo.processes import ChildFailed
from demo.stack import Options, Stack
from todo_backend_spec.browser import SuiteRun, SuiteUnfinished, run_suite
from todo_backend_spec.pages import SpecPages, extract

_DEFAULT_REPOSITORY = "/work/.mirror/TodoBackend+todo-backend-js-spec/repo"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options scripts/todo_spec.sh documents."""
    parser = argparse.ArgumentParser(prog="scripts/todo_spec.sh", description=__doc__)
    parser.add_argument("--replicas", type=int, default=3, metavar="N")
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path(os.environ.get("TODO_SPEC_REPOSITORY", _DEFAULT_REPOSITORY)),
        help="git directory of TodoBackend/todo-backend-js-spec",
    )
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the suite")
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="exit 0 with a notice when the repository is not there (CI on a new machine)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 only if every spec passed."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not (args.repository / "HEAD").is_file():
        if args.skip_missing:
            _say(f"SKIPPED: no copy of todo-backend-js-spec at {args.repository}")
            return 0
        print(f"todo_spec: error: no git directory at {args.repository}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="todo-spec.") as scratch:
        files = Path(scratch)
        extract(args.repository, files)
        with SpecPages(files) as pages:
            return asyncio.run(_run(args, pages.origin))


async def _run(args: argparse.Namespace, page_url: str) -> int:
    settings = {
        "TODO_AUTH": "none",
        "TODO_CORS_ORIGINS": page_url,
        # The suite checks the API's contract, not its rate limits: its browser sends
        # bursts of writes (over 20 in a second on a fast run) that a per-client write
        # limit would answer with 429.
        "TODO_WRITE_RATE_LIMIT": UNTHROTTLED["TODO_WRITE_RATE_LIMIT"],
    }
    stack = Stack(Options(replicas=args.replicas, port=0, settings=settings), say=_say)
    try:
        await stack.start()
        api_root = f"{stack.base_url}/todos"
        _say(f"suite page {page_url}/index.html -> {api_root} (in {args.chromium})")
        started = time.monotonic()
        run = await run_suite(page_url, api_root, chromium=args.chromium, within=args.timeout)
        elapsed = time.monotonic() - started
        traffic = _traffic(stack.nginx_log)
    except (ChildFailed, SuiteUnfinished) as exc:
        print(f"todo_spec: error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        await stack.stop()
    _report(run, elapsed, traffic)
    return 0 if run.failed == 0 and run.passed > 0 else 1


def _traffic(log: Path | None) -> str:
    """What nginx saw: requests by method and status, and which replicas answered."""
    if log is None:
        return "no nginx log"
    methods: collections.Counter[str] = collections.Counter()
    upstreams: collections.Counter[str] = collections.Counter()
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry["uri"].startswith("/todos"):
            methods[f"{entry['method']} {entry['status']}"] += 1
            upstreams[entry["upstream"].rpartition("/")[2] or "nginx"] += 1
    by_method = ", ".join(f"{key} x{count}" for key, count in sorted(methods.items()))
    by_replica = ", ".join(f"{key} x{count}" for key, count in sorted(upstreams.items()))
    return f"nginx saw {by_method}; answered by {by_replica}"


def _report(run: SuiteRun, elapsed: float, traffic: str) -> None:
    for outcome in run.outcomes:
        mark = "ok  " if outcome.state == "passed" else "FAIL"
        print(f"  {mark} {outcome.title}", flush=True)
        if outcome.error:
            print("       " + outcome.error.strip().replace("\n", "\n       "), flush=True)
    if run.failed:
        for line in run.console:
            print(f"  {line}", flush=True)
    _say(traffic)
    _say(f"Todo-Backend spec suite in {elapsed:.1f} s:")
    print(f"{run.passed} passed, {run.failed} failed", flush=True)


def _say(message: str) -> None:
    print(f"todo_spec: {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
