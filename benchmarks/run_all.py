"""Run every peer benchmark into JSON, then render its Markdown table and SVG plots.

Run (services up, see scripts/services.sh; peers from the `bench` extra):

    .venv/bin/python benchmarks/run_all.py [--quick] [--only cache,ratelimit,...]
        [--url redis://127.0.0.1:6379/0] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
        [--out benchmarks/results] [--plots docs/assets/benchmarks] [--render-only]

Each benchmark runs in a process of its own, one after the other, with the
settings below (about 10 minutes in all on 2 cores; `--quick`, about a minute,
only checks that everything runs: its figures are not worth reading, so they go to
a scratch folder under the temporary directory unless `--out` says otherwise). Each writes
`<out>/<name>.json` (`_results.py`) and its output to `<out>/<name>.txt`; then
`tables.py` writes `<out>/<name>.md`, which the docs include, and `plots.py` the
SVGs under `--plots`. `--render-only` renders the JSON already there.

Every benchmark writes only keys of its own run (and deletes them) on the Redis of
`--url`, except `task_queue`, which starts a Redis server of its own (its peers'
keys share no prefix and the run empties its database); its peer venvs are made
first if missing (`task_queue.py --setup`, which needs the package index once).
Nothing is pinned: run on a quiet machine and read the load average each result
records.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plots
import tables
from _results import Result

HERE = Path(__file__).resolve().parent
# name: (its settings, --quick settings); --url / --dsn / --json are added below.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "redis_layer": (["--seconds", "1", "--rounds", "3"], ["--seconds", "0.1", "--rounds", "1"]),
    "ratelimit": (["--seconds", "1", "--rounds", "3"], ["--seconds", "0.1", "--rounds", "1"]),
    "cache": (["--seconds", "1", "--rounds", "7"], ["--seconds", "0.1", "--rounds", "1"]),
    "breaker": (["--calls", "200000", "--rounds", "7"], ["--calls", "5000", "--rounds", "1"]),
    "health": (["--calls", "20000", "--rounds", "7"], ["--calls", "1000", "--rounds", "1"]),
    "pools": (["--seconds", "1", "--rounds", "5"], ["--seconds", "0.1", "--rounds", "1"]),
    "task_queue": (
        ["--rounds", "3", "--seconds", "1", "--jobs", "3000"],
        ["--rounds", "1", "--seconds", "0.2", "--jobs", "300"],
    ),
}
REDIS_URL_OPTION = {"breaker": "--redis-url", "pools": None, "task_queue": None}


def command(name: str, options: argparse.Namespace) -> list[str]:
    """The command line of benchmark `name`."""
    settings, quick = BENCHMARKS[name]
    argv = [sys.executable, str(HERE / f"{name}.py"), *(quick if options.quick else settings)]
    url_option = REDIS_URL_OPTION.get(name, "--url")
    if url_option is not None:
        argv += [url_option, options.url]
    if name == "pools":
        argv += ["--dsn", options.dsn]
    return [*argv, "--json", str(options.out / f"{name}.json")]


def run(name: str, options: argparse.Namespace) -> bool:
    """Run one benchmark, its output to the terminal and to `<out>/<name>.txt`; if it passed."""
    if name == "task_queue":
        subprocess.run([sys.executable, str(HERE / "task_queue.py"), "--setup"], check=True)
    argv = command(name, options)
    print(f"\n== {name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    with (options.out / f"{name}.txt").open("w") as log:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            log.write(line)
        passed = process.wait() == 0
    print(f"== {name}: {'done' if passed else 'FAILED'} in {time.monotonic() - started:.0f} s")
    return passed


def render(names: list[str], options: argparse.Namespace) -> None:
    """Write the Markdown table and the plots of each benchmark whose JSON is there."""
    for name in names:
        path = options.out / f"{name}.json"
        if path.exists():
            result = Result.read(path)
            print(tables.save(result, options.out))
            for written in plots.save(result, options.plots):
                print(written)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help=",".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="check that all runs, ~2 min")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results")
    parser.add_argument("--plots", type=Path, help="default: docs/assets/benchmarks")
    parser.add_argument("--render-only", action="store_true", help="render the JSON there")
    options = parser.parse_args()
    # A quick run's figures are not worth reading: never over the ones the docs show.
    scratch = Path(tempfile.gettempdir()) / "scalepy-bench-quick"
    if options.out is None:
        options.out = scratch if options.quick else HERE / "results"
    if options.plots is None:
        options.plots = (
            scratch / "plots" if options.quick else HERE.parent / "docs/assets/benchmarks"
        )
    names = options.only.split(",") if options.only else list(BENCHMARKS)
    if unknown := set(names) - set(BENCHMARKS):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    options.out.mkdir(parents=True, exist_ok=True)
    failed = [] if options.render_only else [name for name in names if not run(name, options)]
    render(names, options)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
