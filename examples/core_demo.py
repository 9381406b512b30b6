"""A tour of scalepy against a real Redis: pipelining, scripts, serializers, rate limits, metrics.

Run it, with the local services up (`scripts/services.sh start`):

    .venv/bin/python examples/core_demo.py [--url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from prometheus_client import CollectorRegistry

from scalepy.backends import KeySpace, parse_backend_url
from scalepy.backends.redis import RedisClient, Script
from scalepy.errors import SignatureError
from scalepy.integrations.prometheus import PrometheusInstrumentation, render_latest
from scalepy.ratelimit import RateLimiter, TokenBucket
from scalepy.serializers import JsonSerializer, PickleSerializer

# Takes up to ARGV[2] tokens from a counter (KEYS[1]) that starts at ARGV[1].
TAKE = Script(
    "take",
    """
    local left = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
    local taken = math.min(left, tonumber(ARGV[2]))
    redis.call('SET', KEYS[1], left - taken, 'EX', 60)
    return {taken, left - taken}
    """,
)


async def main(url: str) -> None:
    """Run each part of the tour and print what it shows."""
    config = parse_backend_url(url)
    print(f"backend: {config!s}  ({type(config).__name__})")

    registry = CollectorRegistry()
    instrumentation = PrometheusInstrumentation(registry=registry)
    # One hash tag for the run, so multi-key commands also work on a cluster.
    counter, bucket, todo = KeySpace("scalepy:demo").keys(
        f"run-{os.getpid()}", "hits", "bucket", "todo"
    )
    async with RedisClient.from_url(config, instrumentation=instrumentation) as redis:
        # 1. Automatic pipelining: 1,000 concurrent commands, a handful of round trips.
        started = time.perf_counter()
        await asyncio.gather(*(redis.execute("INCR", counter) for _ in range(1_000)))
        elapsed_ms = (time.perf_counter() - started) * 1000
        stats = redis.statistics().pipeline
        total = int(await redis.execute("GET", counter))
        print(
            f"pipelining: {total} INCRs in {elapsed_ms:.1f} ms, "
            f"{stats.batches} pipeline(s) for {stats.commands} commands"
        )

        # 2. A Lua script run by SHA1; after SCRIPT FLUSH it is resent transparently.
        print(f"script: take 3 of 5 -> {await redis.run_script(TAKE, [bucket], [5, 3])}")
        await redis.execute("SCRIPT", "FLUSH")
        print(
            f"script after SCRIPT FLUSH: take 3 -> {await redis.run_script(TAKE, [bucket], [5, 3])}"
        )

        # 3. Serializers: JSON by default; pickle only signed, and tampering is refused.
        json = JsonSerializer()
        await redis.execute("SET", todo, json.dumps({"id": 1, "title": "ship"}))
        print(f"json: {json.loads(await redis.execute('GET', todo))}")
        signed = PickleSerializer(key="demo-secret-key-0123456789")
        blob = signed.dumps({"when": (2026, 11, 24)})
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        try:
            signed.loads(tampered)
        except SignatureError as exc:
            print(f"signed pickle: round trip {signed.loads(blob)}, tampered copy refused ({exc})")

        await redis.execute("DEL", counter, bucket, todo)

    # 4. Rate limiting shared by every replica: 25 concurrent requests, a burst of 10.
    async with RateLimiter(config, namespace=f"demo-{os.getpid()}") as limiter:
        burst = TokenBucket(capacity=10, refill_rate=5.0)
        decisions = await asyncio.gather(
            *(limiter.acquire("client:203.0.113.7", burst) for _ in range(25))
        )
        allowed = sum(decision.allowed for decision in decisions)
        retry = max(decision.retry_after for decision in decisions)
        print(f"rate limit: {allowed} of 25 allowed, the rest may retry in {retry:.1f} s")
        await limiter.reset("client:203.0.113.7", burst)

    # 5. Metrics: the pipeline sizes, as Prometheus scrapes them.
    body, _ = render_latest(registry)
    lines = [line for line in body.decode().splitlines() if "pipeline_size" in line]
    print("prometheus:", *(line for line in lines if "_count" in line or "_sum" in line))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    asyncio.run(main(parser.parse_args().url))
