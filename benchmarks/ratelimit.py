"""Rate-limit decisions per second on one Redis: scalepy against `limits` and a raw EVALSHA.

Run (services up, see scripts/services.sh; peers from the `bench` extra):

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/ratelimit.py [--url redis://127.0.0.1:6379/0]
        [--seconds 2] [--rounds 3]

Every contender decides allowing requests (limits far above the load) on one hot
key per contender; rounds alternate between contenders and the median is shown.
The raw redis-py EVALSHA of `return 1` is the ceiling of one round trip per call
without pipelining. The memory rows decide in-process (`memory://` for both
libraries): the cost of the limiter itself, telemetry included, without a round trip.
"""

from __future__ import annotations

import asyncio
import uuid

from limits import RateLimitItemPerSecond
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string
from redis.asyncio import Redis

from _harness import Operation, median_throughputs, redis_options
from scalepy.ratelimit import GCRA, FixedWindow, RateLimiter, TokenBucket

HUGE = 1_000_000  # requests per second: never limited during the run


async def main() -> None:
    parser = redis_options(__doc__, seconds=2.0)
    options = parser.parse_args()
    run = uuid.uuid4().hex[:8]

    limiter = RateLimiter(options.url, namespace=f"bench-{run}", timeout=1.0)
    in_memory = RateLimiter("memory://")
    bucket = TokenBucket(capacity=HUGE, refill_rate=float(HUGE))
    gcra = GCRA(limit=HUGE, period=1.0)
    fixed_window = FixedWindow(limit=HUGE, window=1.0)
    storage = storage_from_string(f"async+{options.url}")
    item = RateLimitItemPerSecond(HUGE)
    moving = MovingWindowRateLimiter(storage)
    fixed = FixedWindowRateLimiter(storage)
    sliding = SlidingWindowCounterRateLimiter(storage)
    memory_fixed = FixedWindowRateLimiter(storage_from_string("async+memory://"))
    plain = Redis.from_url(options.url, max_connections=100)
    trivial = await plain.script_load("return 1")

    contenders: dict[str, Operation] = {
        "scalepy token bucket": lambda: limiter.acquire(f"tb-{run}", bucket),
        "scalepy GCRA": lambda: limiter.acquire(f"gcra-{run}", gcra),
        "scalepy fixed window": lambda: limiter.acquire(f"fixed-{run}", fixed_window),
        "limits moving window": lambda: moving.hit(item, f"mw-{run}"),
        "limits fixed window": lambda: fixed.hit(item, f"fw-{run}"),
        "limits sliding window counter": lambda: sliding.hit(item, f"sw-{run}"),
        "raw redis-py EVALSHA": lambda: plain.evalsha(trivial, 0),
        "scalepy token bucket, memory": lambda: in_memory.acquire("tb", bucket),
        "limits fixed window, memory": lambda: memory_fixed.hit(item, "fw"),
    }
    print(f"{'contender':<31} {'tasks':>5} {'decisions/s':>12} {'vs raw EVALSHA':>15}")
    for tasks in (1, 50):
        medians = await median_throughputs(contenders, tasks, options.seconds, options.rounds)
        ceiling = medians["raw redis-py EVALSHA"]
        for name, value in medians.items():
            print(f"{name:<31} {tasks:>5} {value:>12,.0f} {value / ceiling:>14.2f}x")
        ratio = medians["scalepy token bucket"] / medians["limits moving window"]
        print(f"{'  token bucket / limits moving window':<37} {ratio:>11.2f}x")
    await limiter.aclose()
    await in_memory.aclose()
    await plain.aclose()


if __name__ == "__main__":
    asyncio.run(main())
