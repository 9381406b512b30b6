"""GET and EVALSHA throughput: redis-py, plain and pipelined, against scalepy's RedisClient.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/redis_layer.py [--url redis://127.0.0.1:6379/0]
        [--seconds 2] [--rounds 3]

Each scenario runs `tasks` coroutines that each issue commands back to back for a
fixed time; a first, shorter round is discarded, rounds alternate between the
clients and the median is reported, so all are measured on the same server, in
the same run, under the same load.

- redis-py: `Redis.get` / `Redis.evalsha`, one command per call (its pool lends
  each concurrent caller a connection);
- redis-py, explicit pipeline: one caller sends `--batch` commands per
  `pipeline(transaction=False)`, what an application that can batch its own
  commands gets from redis-py; counted per command. It is measured with the
  1-task rows and shown beside the 50-task rows: both keep about 50 commands in
  flight;
- scalepy: `RedisClient.execute` / `run_script`, which pipelines the commands of
  concurrent callers by itself.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from _harness import (
    Figure,
    Operation,
    figure_row,
    marked,
    median_throughputs,
    print_table,
    redis_options,
    server_versions,
    with_tasks,
    write_result,
)
from _results import Metadata, Result
from scalepy.backends.redis import RedisClient, Script

KEY = "scalepy:bench:{redis_layer}:key"
SCRIPT = Script("bench", "return redis.call('GET', KEYS[1])")
PIPELINED = "redis-py, explicit pipeline"


async def main() -> None:
    parser = redis_options(__doc__, seconds=2.0)
    parser.add_argument("--batch", type=int, default=50, help="commands per explicit pipeline")
    options = parser.parse_args()
    batch = options.batch

    plain = Redis.from_url(options.url, max_connections=100)
    layer = RedisClient.from_url(options.url)
    await plain.set(KEY, b"x" * 64)
    await plain.script_load(SCRIPT.source)

    async def pipelined_get() -> None:
        async with plain.pipeline(transaction=False) as pipe:
            for _ in range(batch):
                pipe.get(KEY)
            await pipe.execute()

    async def pipelined_evalsha() -> None:
        async with plain.pipeline(transaction=False) as pipe:
            for _ in range(batch):
                pipe.evalsha(SCRIPT.sha, 1, KEY)
            await pipe.execute()

    scenarios: dict[str, dict[str, Operation]] = {
        "GET": {
            "redis-py": lambda: plain.get(KEY),
            PIPELINED: pipelined_get,
            "scalepy": lambda: layer.execute("GET", KEY),
        },
        "EVALSHA": {
            "redis-py": lambda: plain.evalsha(SCRIPT.sha, 1, KEY),
            PIPELINED: pipelined_evalsha,
            "scalepy": lambda: layer.run_script(SCRIPT, [KEY]),
        },
    }
    rows: list[list[str]] = []
    result = Result(
        benchmark="redis_layer",
        metadata=Metadata.collect(None, **await server_versions(options.url)),
        notes=[
            f"Medians of {options.rounds} rounds of {options.seconds:g} s after a discarded "
            "warm-up round; unpinned.",
            f"The explicit pipeline row is one caller sending {batch} commands per pipeline, "
            "shown with the 50-task rows (about 50 commands in flight in both).",
        ],
    )
    try:
        for command, clients in scenarios.items():
            single = {name: op for name, op in clients.items() if name != PIPELINED}
            first = await median_throughputs(clients, 1, options.seconds, options.rounds)
            crowd = await median_throughputs(single, 50, options.seconds, options.rounds)
            pipe = first.pop(PIPELINED)
            crowd[f"{PIPELINED} of {batch}, 1 caller"] = Figure(pipe.median * batch, pipe.errors)
            for tasks, figures in ((1, first), (50, crowd)):
                baseline = figures["redis-py"].median
                result.rows.extend(
                    figure_row(
                        name,
                        with_tasks(command, tasks),
                        figure.median,
                        errors=figure.errors,
                        ratio=figure.median / baseline,
                        ratio_to="vs redis-py",
                    )
                    for name, figure in figures.items()
                )
                rows += [
                    [
                        command,
                        name,
                        str(tasks),
                        marked(figure, f"{figure.median:,.0f}"),
                        f"{figure.median / baseline:.2f}x",
                        f"{figure.errors:,}",
                    ]
                    for name, figure in figures.items()
                ]
    finally:
        await plain.delete(KEY)
        await plain.aclose()
        await layer.aclose()
    headers = ["command", "contender", "tasks", "ops/s", "vs redis-py", "errors/fallbacks"]
    print_table(headers, rows, left=2)
    write_result(result, options.json)


if __name__ == "__main__":
    asyncio.run(main())
