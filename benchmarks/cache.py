"""Cache hits and misses per second: scalepy against cashews, aiocache and a raw redis-py GET.

Run (services up, see scripts/services.sh; peers from the `bench` extra):

    .venv/bin/pip install -e '.[all,bench]'
    .venv/bin/python benchmarks/cache.py [--url redis://127.0.0.1:6379/0]
        [--seconds 1] [--rounds 3] [--only NAME ...] [--scenario SCENARIO ...]

`--only` keeps the contenders whose name contains one of the given strings
(e.g. `--only memory --only "L1 on"`), `--scenario` the named scenarios.

Every contender caches the same `async def` through its own decorator, with the
same small dict as the value and the same Redis server:

* scalepy, L1 on: `Cache(url, local_max_size=10_000, local_ttl=600)`: hits come from
  the in-process L1 (whose values live as long as the peers' memory caches keep
  theirs), misses go to Redis (read-or-lock, write) like the other Redis contenders'.
* scalepy, L1 off: `Cache(url)`, every hit a Redis GET.
* scalepy memory: `Cache("memory://")`, one process, its defaults.
* cashews memory / Redis: `Cache().setup("mem://?size=100000&check_interval=0")` /
  `setup(url)` (pickle, its only serializer), `@cache(ttl=...)`. Its memory store's
  expiry sweep is off: by default it walks the whole store once a second in one
  event-loop step (40-110 ms at 100,000 entries), a stall every contender of this
  process paid, long enough to time out another's Redis command; nothing expires
  during a run, and it drops an expired entry when reading it anyway.
* aiocache memory / Redis: `@cached(cache=SimpleMemoryCache)` / `RedisCache` on the
  URL's host, port and database (JSON, its Redis default; scalepy's default is JSON too).
* raw redis-py GET: `Redis.get` of the stored value and `json.loads` of it (a cache
  hands back the value, not its bytes): one round trip per call without pipelining,
  the floor a Redis hit should beat.

Scenarios, each at 1 and 50 concurrent tasks: "hot key" (every call reads one
key; at 50 tasks concurrent callers of the key share one read in the caches that
single-flight, so it measures that, not Redis hits), "many keys" (calls cycle over
1,000 keys, all cached beforehand: the Redis-hit figure) and "miss" (every call has
a new argument: lookup, call, store). Every key is cached beforehand and a first,
shorter round of every contender is discarded; rounds alternate between contenders
and the median is shown. The ratio compares each contender with the fastest peer of
its tier (the memory tier for L1 hits and in-memory caches, the Redis tier for the
rest, scalepy's L1 misses included; the raw GET is not a peer).

"errors/fallbacks" counts, over the measured rounds, calls that raised, records
logged at WARNING or above (aiocache and cashews log a failed Redis call and let
the loader answer), scalepy's failed backend calls (answered by the loader) and,
with its L1 on, hits the L1 left to Redis (its invalidation channel looked
unhealthy, so the L1 was bypassed). A row whose count is not 0 does not measure
what it says: it is marked `!` and left out of the best-peer comparison.

The run's keys (every contender's prefix carries the run's id) are deleted at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from aiocache import RedisCache, SimpleMemoryCache, cached
from cashews import Cache as CashewsCache
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
from _results import Metadata, Result, Row
from scalepy.backends import parse_backend_url
from scalepy.backends.redis import RedisClient

KEYS = 1_000
TTL = 600  # seconds: nothing expires during a run
MEMORY, REDIS, RAW = "memory", "Redis", "raw"
SCENARIOS = ("miss", "hot key", "many keys")  # in the order they run

Loader = Callable[[int], Awaitable[dict[str, Any]]]


async def load(item: int) -> dict[str, Any]:
    """What every contender caches: a small dict, as a database row would give."""
    return {"id": item, "title": "buy milk", "done": False, "tags": ["home", "urgent"]}


@dataclass(frozen=True, slots=True)
class Contender:
    """One cache under test: its decorated loader, and the tiers it is compared within."""

    name: str
    tier: str
    """Where its hits come from."""
    call: Loader
    peer: bool = True
    """Whether it is a peer library (the ratios compare against the best peer)."""
    miss_tier: str = ""
    """Where its misses go, when not its hits' tier (scalepy's L1 misses go to Redis)."""
    backend_errors: Callable[[], int] | None = None
    """Calls answered other than the row says so far (scalepy): a failed Redis call is
    answered by the loader, and with the L1 on a hit from Redis means the L1 was bypassed."""


def _l1_fallbacks(cache: Any) -> int:
    """Failed Redis calls, plus hits the L1 left to Redis (every key is in the L1 beforehand)."""
    stats = cache.statistics()
    return int(stats.errors + stats.hits - stats.local_hits)


def workloads(call: Loader, misses: itertools.count[int]) -> dict[str, Operation]:
    """The three scenarios for one contender (keys 0..KEYS-1 are cached beforehand)."""
    cycle = itertools.cycle(range(KEYS))
    return {
        "hot key": lambda: call(0),
        "many keys": lambda: call(next(cycle)),
        "miss": lambda: call(next(misses)),
    }


async def contenders(url: str, run: str) -> tuple[list[Contender], list[Callable[[], Any]]]:
    """Build every contender; return them with the coroutines that close them."""
    config = parse_backend_url(url)
    host, port = getattr(config, "host", "127.0.0.1"), getattr(config, "port", 6379)
    db = getattr(config, "db", 0)
    closers: list[Callable[[], Any]] = []
    found: list[Contender] = []

    try:
        from scalepy.cache import Cache
    except ImportError:
        print("scalepy.cache.Cache is not available yet: its rows are skipped\n")
    else:
        local = Cache(url, namespace=f"bench-l1-{run}", local_max_size=10_000, local_ttl=TTL)
        remote = Cache(url, namespace=f"bench-l2-{run}")
        memory = Cache("memory://", namespace=f"bench-m-{run}")
        found += [
            Contender("scalepy memory", MEMORY, memory.cached(ttl=TTL)(load), peer=False),
            Contender(
                "scalepy, L1 on",
                MEMORY,
                local.cached(ttl=TTL)(load),
                peer=False,
                miss_tier=REDIS,
                backend_errors=lambda: _l1_fallbacks(local),
            ),
            Contender(
                "scalepy, L1 off (Redis)",
                REDIS,
                remote.cached(ttl=TTL)(load),
                peer=False,
                backend_errors=lambda: remote.statistics().errors,
            ),
        ]
        closers += [local.aclose, remote.aclose, memory.aclose]

    cashews_memory = CashewsCache()
    cashews_memory.setup("mem://?size=100000&check_interval=0")  # no sweep: see the doc
    cashews_redis = CashewsCache()
    cashews_redis.setup(url)
    closers += [cashews_memory.close, cashews_redis.close]
    aiocache_memory = cached(ttl=TTL, cache=SimpleMemoryCache, namespace=f"bench-am-{run}")
    aiocache_redis = cached(
        ttl=TTL, cache=RedisCache, endpoint=host, port=port, db=db, namespace=f"bench-ar-{run}"
    )
    aiocache_redis_call: Loader = aiocache_redis(load)
    closers.append(aiocache_redis.cache.close)
    found += [
        Contender(
            "cashews memory", MEMORY, cashews_memory(ttl=TTL, prefix=f"bench-cm-{run}")(load)
        ),
        Contender("cashews Redis", REDIS, cashews_redis(ttl=TTL, prefix=f"bench-cr-{run}")(load)),
        Contender("aiocache memory", MEMORY, aiocache_memory(load)),
        Contender("aiocache Redis", REDIS, aiocache_redis_call),
    ]

    plain = Redis.from_url(url, max_connections=100)
    closers.append(plain.aclose)
    raw_keys = [f"bench-raw-{run}:{item}" for item in range(KEYS)]
    for key in raw_keys:
        await plain.set(key, b'{"id":0,"title":"buy milk","done":false,"tags":["home","urgent"]}')

    async def raw_get(item: int) -> dict[str, Any]:
        stored = await plain.get(raw_keys[item % KEYS])
        assert stored is not None  # written above, expires after TTL
        value: dict[str, Any] = json.loads(stored)
        return value

    found.append(Contender("raw redis-py GET", RAW, raw_get, peer=False))
    return found, closers


async def main() -> None:
    parser = redis_options(__doc__, seconds=1.0)
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="contenders named so"
    )
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, default=[], help="run only these"
    )
    options = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    found, closers = await contenders(options.url, run)
    if options.only:
        found = [c for c in found if any(part in c.name for part in options.only)]
    misses = itertools.count(KEYS)  # shared: a miss is never repeated by anyone
    operations = {c.name: workloads(c.call, misses) for c in found}

    results: dict[tuple[str, int], dict[str, Figure]] = {}
    # Misses first: an L1 hit never yields to the event loop, so 50 tasks hitting L1
    # starve the Redis replies of anything in flight; a reply late past the cache's
    # timeout is an error, and enough of them would make later misses skip Redis.
    fallbacks = {c.name: c.backend_errors for c in found if c.backend_errors is not None}
    for scenario in [s for s in SCENARIOS if s in (options.scenario or SCENARIOS)]:
        if scenario != "miss":  # every key cached beforehand, in the L1s too (misses evict)
            for contender in found:
                for item in range(KEYS):
                    await contender.call(item)
        for tasks in (1, 50):
            field = {c.name: operations[c.name][scenario] for c in found}
            if scenario == "miss":
                field.pop("raw redis-py GET", None)
            results[scenario, tasks] = await median_throughputs(
                field, tasks, options.seconds, options.rounds, fallbacks
            )
    result = report(found, results)
    for close in closers:
        await close()
    await _forget(options.url, run)
    result.metadata = Metadata.collect(
        None,
        **await server_versions(options.url),
        cashews=version("cashews"),
        aiocache=version("aiocache"),
    )
    result.notes += [
        f"Medians of {options.rounds} rounds of {options.seconds:g} s after a discarded "
        "warm-up round; unpinned; every key cached beforehand; misses run first.",
        "us/call is the time per call of one task (tasks / throughput).",
        "Hot key at 50 tasks measures single flight (concurrent callers of one key share "
        "one read) as much as the cache; many keys at 50 tasks is the Redis-hit figure.",
    ]
    write_result(result, options.json)


def report(found: list[Contender], results: dict[tuple[str, int], dict[str, Figure]]) -> Result:
    """Print one table: ops/s per scenario, each contender against its tier's best peer.

    Rows with errors or fallbacks are marked `!` and never serve as the best peer.

    Returns:
        The same figures as a result (without metadata notes).
    """
    peers = {c.name for c in found if c.peer}
    rows: list[list[str]] = []
    result_rows: list[Row] = []
    for (scenario, tasks), figures in results.items():
        tiers = {
            c.name: c.miss_tier if scenario == "miss" and c.miss_tier else c.tier for c in found
        }
        raw = figures.get("raw redis-py GET")
        for name, figure in figures.items():
            tier = REDIS if tiers[name] == RAW else tiers[name]
            best = max(
                (
                    (other.median, peer)
                    for peer, other in figures.items()
                    if peer in peers and tiers[peer] == tier and other.errors == 0
                ),
                default=None,
            )
            ratio = None if best is None else figure.median / best[0]
            versus_raw = None if raw is None or tier != REDIS else figure.median / raw.median
            rows.append(
                [
                    scenario,
                    name,
                    str(tasks),
                    marked(figure, f"{figure.median:,.0f}"),
                    "" if best is None else f"{ratio:.2f}x {best[1]}",
                    "" if versus_raw is None else f"{versus_raw:.2f}x",
                    f"{1e6 * tasks / figure.median:,.0f}",
                    f"{figure.errors:,}",
                ]
            )
            result_rows.append(
                figure_row(
                    name,
                    with_tasks(scenario, tasks),
                    figure.median,
                    errors=figure.errors,
                    ratio=ratio,
                    ratio_to="" if best is None else f"vs best peer ({best[1]})",
                    more={"vs raw GET": versus_raw},
                )
            )
    headers = ["scenario", "contender", "tasks", "calls/s", "vs best peer", "vs raw GET"]
    print_table([*headers, "us/call", "errors/fallbacks"], rows, left=2)
    return Result(benchmark="cache", metadata=Metadata.collect(), rows=result_rows)


async def _forget(url: str, run: str) -> None:
    """Delete the run's keys (they would expire after TTL anyway)."""
    async with RedisClient.from_url(url) as client:
        cursor = b"0"
        while True:
            cursor, keys = await client.execute("SCAN", cursor, "MATCH", f"*{run}*", "COUNT", 1000)
            if keys:
                await client.execute("UNLINK", *keys)
            if cursor == b"0":
                break


if __name__ == "__main__":
    asyncio.run(main())
