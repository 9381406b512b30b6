"""Rate-limit decisions per second on one Redis: scalepy against `limits` and a raw EVALSHA.

Run (services up, see scripts/services.sh; peers from the `bench` extra):

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/ratelimit.py [--url redis://127.0.0.1:6379/0]
        [--seconds 2] [--rounds 3]

Every contender decides allowing requests (limits far above the load) on one hot
key per contender; a first, shorter round is discarded, rounds alternate between
contenders and the median is shown. `limits` is shown with each of its async Redis
strategies, its fastest (fixed window) included, and "vs best limits" compares
with the fastest of them in the same run; scalepy's fixed window is the like-for-like
row to read beside it. "errors/fallbacks" counts calls that raised and warnings
logged (scalepy logs once when it falls back to its local limiter); a row whose
count is not 0 is marked `!`.
The raw redis-py EVALSHA of `return 1` is the ceiling of one round trip per call
without pipelining.
Concurrent scalepy calls on one key made in one event-loop tick share one script
run (see docs/ratelimit.md, "Coalescing"): the "uncoalesced" rows are the same
limiter with `coalesce=False`, one script run per call, for the before/after
ratio ("vs uncoalesced") in the same run; the "many keys" rows spread the calls
over 10,000 keys, where calls of one tick rarely share a key. The memory rows
decide in-process (`memory://` for both libraries): the cost of the limiter
itself, telemetry included, without a round trip. The "leased" rows are the
limiter with a `Lease` (see docs/ratelimit.md, "Leases"): the hot key is decided
from batches of tokens, most calls without a round trip; over many keys, each
key is cold (exact, one round trip a call) and the rows show what tracking costs.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from importlib.metadata import version

from limits import RateLimitItemPerSecond
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import storage_from_string
from redis.asyncio import Redis

from _harness import (
    Operation,
    figure_row,
    forget_keys,
    marked,
    median_throughputs,
    print_table,
    redis_options,
    server_versions,
    with_tasks,
    write_result,
)
from _results import Metadata, Result
from scalepy.backends.redis import RedisClient
from scalepy.ratelimit import (
    GCRA,
    FixedWindow,
    Lease,
    RateLimiter,
    RedisRateLimitStore,
    TokenBucket,
)

HUGE = 1_000_000  # requests per second: never limited during the run
KEYS = 10_000  # the "many keys" rows cycle through this many keys
# scalepy rows -> the same limiter without coalescing, for the "vs uncoalesced" column.
UNCOALESCED = {
    "scalepy token bucket": "scalepy token bucket, uncoalesced",
    "scalepy token bucket, many keys": "scalepy token bucket, many keys, uncoalesced",
}


async def main() -> None:
    parser = redis_options(__doc__, seconds=2.0)
    options = parser.parse_args()
    run = uuid.uuid4().hex[:8]

    limiter = RateLimiter(options.url, namespace=f"bench-{run}", timeout=1.0)
    client = RedisClient.from_url(options.url)
    uncoalesced = RateLimiter(
        RedisRateLimitStore(client.with_timeout(1.0), namespace=f"bench-{run}", coalesce=False)
    )
    leased = RateLimiter(options.url, namespace=f"bench-{run}", timeout=1.0, lease=Lease())
    spread = itertools.count()
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
        "scalepy token bucket, uncoalesced": lambda: uncoalesced.acquire(f"tbu-{run}", bucket),
        "scalepy token bucket, many keys": lambda: limiter.acquire(
            f"tb-{run}-{next(spread) % KEYS}", bucket
        ),
        "scalepy token bucket, many keys, uncoalesced": lambda: uncoalesced.acquire(
            f"tbu-{run}-{next(spread) % KEYS}", bucket
        ),
        "scalepy token bucket, leased": lambda: leased.acquire(f"tbl-{run}", bucket),
        "scalepy token bucket, many keys, leased": lambda: leased.acquire(
            f"tbl-{run}-{next(spread) % KEYS}", bucket
        ),
        "scalepy GCRA": lambda: limiter.acquire(f"gcra-{run}", gcra),
        "scalepy fixed window": lambda: limiter.acquire(f"fixed-{run}", fixed_window),
        "limits moving window": lambda: moving.hit(item, f"mw-{run}"),
        "limits fixed window": lambda: fixed.hit(item, f"fw-{run}"),
        "limits sliding window counter": lambda: sliding.hit(item, f"sw-{run}"),
        "raw redis-py EVALSHA": lambda: plain.evalsha(trivial, 0),
        "scalepy token bucket, memory": lambda: in_memory.acquire("tb", bucket),
        "limits fixed window, memory": lambda: memory_fixed.hit(item, "fw"),
    }
    rows: list[list[str]] = []
    result = Result(
        benchmark="ratelimit",
        metadata=Metadata.collect(
            None, **await server_versions(options.url), limits=version("limits")
        ),
        notes=[
            f"Medians of {options.rounds} rounds of {options.seconds:g} s after a discarded "
            "warm-up round; unpinned; every contender allows every request (limits far "
            "above the load).",
            "The ratio compares with the fastest of limits' async Redis strategies in the "
            "same run (memory rows: with limits' memory storage); the raw EVALSHA of "
            "`return 1` is the one-round-trip ceiling without pipelining.",
        ],
    )
    try:
        for tasks in (1, 50):
            figures = await median_throughputs(contenders, tasks, options.seconds, options.rounds)
            ceiling = figures["raw redis-py EVALSHA"].median
            # Memory rows compare with limits' memory storage, the others with its Redis ones.
            best = {
                tier: max(
                    (figure.median, name)
                    for name, figure in figures.items()
                    if name.startswith("limits") and _tier(name) == tier and not figure.errors
                )
                for tier in ("Redis", "memory")
            }
            for name, figure in figures.items():
                reference, reference_name = best[_tier(name)]
                ratio = figure.median / reference
                more = {"vs raw EVALSHA": figure.median / ceiling}
                before = UNCOALESCED.get(name)
                if before is not None:
                    more["vs uncoalesced"] = figure.median / figures[before].median
                result.rows.append(
                    figure_row(
                        name,
                        with_tasks("decisions", tasks),
                        figure.median,
                        errors=figure.errors,
                        ratio=ratio,
                        ratio_to=f"vs fastest limits ({reference_name})",
                        more=more,
                    )
                )
                rows.append(
                    [
                        name,
                        str(tasks),
                        marked(figure, f"{figure.median:,.0f}"),
                        f"{figure.median / ceiling:.2f}x",
                        f"{ratio:.2f}x {reference_name}",
                        f"{more['vs uncoalesced']:.2f}x" if before else "",
                        f"{figure.errors:,}",
                    ]
                )
    finally:
        await limiter.aclose()
        await leased.aclose()
        await client.aclose()
        await in_memory.aclose()
        await plain.aclose()
        await forget_keys(options.url, f"*{run}*")  # every contender's key carries it
    headers = ["contender", "tasks", "decisions/s", "vs raw EVALSHA", "vs fastest limits"]
    print_table([*headers, "vs uncoalesced", "errors/fallbacks"], rows)
    write_result(result, options.json)


def _tier(name: str) -> str:
    """Where a contender decides: in-process (`memory`) or on Redis."""
    return "memory" if name.endswith("memory") else "Redis"


if __name__ == "__main__":
    asyncio.run(main())
