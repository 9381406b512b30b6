"""Queries per second through scalepy's PoolManager against a bare asyncpg pool.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/pools.py [--dsn postgresql://postgres@127.0.0.1:5432/test]
        [--seconds 2] [--rounds 5] [--tasks 50] [--sizes 10,50]

Each contender runs `fetchval("SELECT 1")` (borrow a connection, one round trip,
reset and return it) from `--tasks` concurrent tasks, on pools of the same size
with every connection opened beforehand; rounds alternate between contenders and
the median is shown. Both pools reset each returned connection (asyncpg's default
reset query), so the difference is the pools' own bookkeeping.
"""

from __future__ import annotations

import argparse
import asyncio
from importlib.metadata import version

import asyncpg

from _harness import Figure, Operation, figure_row, json_option, median_throughputs, write_result
from _results import Metadata, Result
from scalepy.pools import PoolManager, PoolOptions


async def measure(
    dsn: str, size: int, tasks: int, seconds: float, rounds: int
) -> dict[str, Figure]:
    """Median queries/s of both contenders on pools of `size` connections."""
    bare = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    pools = PoolManager(postgres=dsn, options=PoolOptions(min_size=size, max_size=size))
    await pools.open()
    try:
        contenders: dict[str, Operation] = {
            "bare asyncpg pool": lambda: bare.fetchval("SELECT 1"),
            "scalepy PoolManager": lambda: pools.postgres.fetchval("SELECT 1"),
        }
        return await median_throughputs(contenders, tasks, seconds, rounds)
    finally:
        await pools.aclose()
        await bare.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--sizes", default="10,50", help="pool sizes, comma-separated")
    json_option(parser)
    options = parser.parse_args()
    result = Result(
        benchmark="pools",
        metadata=Metadata.collect(None, asyncpg=version("asyncpg")),
        notes=[
            f"Medians of {options.rounds} rounds of {options.seconds:g} s after a discarded "
            f"warm-up round; {options.tasks} tasks; unpinned."
        ],
    )

    print(f"{'pool size':>9} {'contender':<22} {'queries/s':>10} {'vs bare':>8} {'errors':>7}")
    for size in (int(text) for text in options.sizes.split(",")):
        medians = await measure(options.dsn, size, options.tasks, options.seconds, options.rounds)
        baseline = medians["bare asyncpg pool"].median
        for name, (value, errors) in medians.items():
            print(f"{size:>9} {name:<22} {value:>10,.0f} {value / baseline:>7.2f}x {errors:>7,}")
            result.rows.append(
                figure_row(
                    name,
                    f"SELECT 1, pool of {size}, {options.tasks} tasks",
                    value,
                    errors=errors,
                    ratio=value / baseline,
                    ratio_to="vs bare asyncpg pool",
                )
            )
    write_result(result, options.json)


if __name__ == "__main__":
    asyncio.run(main())
