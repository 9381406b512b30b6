"""GET and EVALSHA throughput: plain redis-py against scalepy's auto-pipelining RedisClient.

Run (services up, see scripts/services.sh):

    .venv/bin/python benchmarks/redis_layer.py [--url redis://127.0.0.1:6379/0]
        [--seconds 2] [--rounds 3]

Each scenario runs `tasks` coroutines that each issue commands back to back for a
fixed time; rounds alternate between the two clients and the median is reported,
so both are measured on the same server, in the same run, under the same load.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from _harness import Operation, median_throughputs, redis_options
from scalepy.backends.redis import RedisClient, Script

KEY = "scalepy:bench:{redis_layer}:key"
SCRIPT = Script("bench", "return redis.call('GET', KEYS[1])")


async def main() -> None:
    parser = redis_options(__doc__, seconds=2.0)
    options = parser.parse_args()

    plain = Redis.from_url(options.url, max_connections=100)
    layer = RedisClient.from_url(options.url)
    await plain.set(KEY, b"x" * 64)
    await plain.script_load(SCRIPT.source)

    scenarios: dict[str, dict[str, Operation]] = {
        "GET": {
            "redis-py": lambda: plain.get(KEY),
            "scalepy": lambda: layer.execute("GET", KEY),
        },
        "EVALSHA": {
            "redis-py": lambda: plain.evalsha(SCRIPT.sha, 1, KEY),
            "scalepy": lambda: layer.run_script(SCRIPT, [KEY]),
        },
    }
    print(f"{'command':<8} {'tasks':>5} {'redis-py ops/s':>15} {'scalepy ops/s':>14} {'ratio':>6}")
    for command, clients in scenarios.items():
        for tasks in (1, 50):
            medians = await median_throughputs(clients, tasks, options.seconds, options.rounds)
            plain_ops, layer_ops = medians["redis-py"], medians["scalepy"]
            print(
                f"{command:<8} {tasks:>5} {plain_ops:>15,.0f} {layer_ops:>14,.0f} "
                f"{layer_ops / plain_ops:>5.2f}x"
            )
    await plain.aclose()
    await layer.aclose()


if __name__ == "__main__":
    asyncio.run(main())
