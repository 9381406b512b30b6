"""Module-level objects used from several event loops: they reconnect there, never hang.

A second `asyncio.run()`, pytest-asyncio's loop per test and Starlette's
`TestClient` without `with` all use one object from a new event loop. The
subprocess scenarios (tests/support/loop_scenarios.py) run three loops in a row
under a hard timeout, with warnings as errors, so a hang fails and a connection
left unclosed shows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

# The internal mechanism behind every per-event-loop resource, tested on its own below.
from scalepy._loop import PerLoop
from scalepy.backends.redis import RedisClient
from scalepy.cache import Cache
from scalepy.errors import BackendUnavailable
from scalepy.ratelimit import RateLimiter, TokenBucket

ROOT = Path(__file__).parent.parent
BOUND = 60.0  # seconds for a whole scenario: three loops and a close


def run_scenario(name: str, url: str, key_prefix: str) -> subprocess.CompletedProcess[str]:
    """Run one scenario in a fresh interpreter, warnings as errors, within BOUND seconds.

    Its keys hold the token of `key_prefix`, whose fixture deletes them afterwards.
    """
    token = key_prefix.partition(":")[2]
    command = [sys.executable, "-W", "error", "-m", "tests.support.loop_scenarios"]
    try:
        return subprocess.run(
            [*command, name, url, token],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scenario {name} on {url} hung for {BOUND} s")


@pytest.mark.parametrize(
    "name", ["redis_client", "cache", "rate_limiter", "queue", "breaker", "middleware"]
)
@pytest.mark.parametrize("which", ["standalone", "cluster"])
def test_a_module_level_object_serves_every_event_loop(
    name: str, which: str, redis_url: str, cluster_url: str, key_prefix: str
) -> None:
    """Three asyncio.run() in a row, then a close in a fourth: all answer, nothing leaks."""
    url = redis_url if which == "standalone" else cluster_url
    result = run_scenario(name, url, key_prefix)
    assert (0, "") == (result.returncode, result.stderr)


def test_a_memory_queue_and_its_worker_serve_every_event_loop(key_prefix: str) -> None:
    """The in-process queue too: jobs enqueued and run in three loops in a row."""
    result = run_scenario("queue", "memory://", key_prefix)
    assert (0, "") == (result.returncode, result.stderr)


# -- pytest-asyncio: a new loop per test, the same module-level objects -------------

URL = os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOKEN = uuid.uuid4().hex
SHARED_CLIENT = RedisClient.from_url(URL)
SHARED_CACHE = Cache(URL, namespace=f"loops-{TOKEN}", local_max_size=10, heartbeat=0.1)
SHARED_LIMITER = RateLimiter(URL, namespace=f"loops-{TOKEN}")
GENEROUS = TokenBucket(capacity=1000, refill_rate=1.0)


async def use_the_shared_objects(test: str) -> None:
    """Commands, a cached value and a limiter decision, all within a few seconds."""
    async with asyncio.timeout(5):
        key = f"scalepy-test:{TOKEN}:{test}"
        assert b"OK" == await SHARED_CLIENT.execute("SET", key, test, "PX", 60_000)
        assert test.encode() == await SHARED_CLIENT.execute("GET", key)
        await SHARED_CACHE.set(test, test)
        assert test == await SHARED_CACHE.get(test)
        assert (await SHARED_LIMITER.acquire(test, GENEROUS)).allowed


async def test_module_level_objects_in_one_test_loop() -> None:
    """Module-level objects work in this test's loop, whichever test ran first."""
    await use_the_shared_objects("first")


async def test_module_level_objects_in_another_test_loop() -> None:
    """... and in the next test's loop, which pytest-asyncio made after closing the other."""
    await use_the_shared_objects("second")


# -- PerLoop, the mechanism ------------------------------------------------------


class Resource:
    """Something loop-bound: it records the loop it was made in and where it was released."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.released_in: asyncio.AbstractEventLoop | None = None
        self.released = asyncio.Event()

    async def release(self) -> None:
        """Note the loop releasing it."""
        self.released_in = asyncio.get_running_loop()
        self.released.set()


def per_loop() -> PerLoop[Resource]:
    """A PerLoop of Resources."""
    return PerLoop(Resource, Resource.release, name="test.resource")


def test_each_loop_gets_its_own_value_released_when_that_loop_ends() -> None:
    """asyncio.run() ends: its value is released on that loop; the next run gets a new one."""
    values = per_loop()

    async def take() -> Resource:
        return values.get(asyncio.get_running_loop())

    first, second = asyncio.run(take()), asyncio.run(take())
    assert first is not second
    assert (first.loop, second.loop) == (first.released_in, second.released_in)


def test_a_loop_in_another_thread_releases_its_value_itself() -> None:
    """Taken over by another loop, a still-running loop releases its value on itself."""
    values = per_loop()
    made = threading.Event()
    released = threading.Event()

    async def hold() -> Resource:
        resource = values.get(asyncio.get_running_loop())
        made.set()
        await resource.released.wait()  # released by its keeper, in this loop
        released.set()
        return resource

    holder: list[Resource] = []
    thread = threading.Thread(target=lambda: holder.append(asyncio.run(hold())))
    thread.start()
    assert made.wait(5)

    async def take_over() -> Resource:
        return values.get(asyncio.get_running_loop())

    mine = asyncio.run(take_over())
    assert released.wait(5)
    thread.join(5)
    assert holder[0].loop is holder[0].released_in
    assert mine is not holder[0]


async def test_aclose_releases_now_and_a_later_use_makes_a_new_value() -> None:
    """Closing releases the running loop's value at once; using it again makes another."""
    values = per_loop()
    loop = asyncio.get_running_loop()
    first = values.get(loop)
    await values.aclose()
    assert loop is first.released_in
    assert first is not values.get(loop)
    await values.aclose()


def test_two_threads_sharing_a_client_never_hang(redis_url: str, key_prefix: str) -> None:
    """Two loops running at once on one client: each command is answered or fails, in time.

    Every switch of loop reconnects (the docs say: give each thread its own client),
    so a command may fail with BackendUnavailable; none waits past the timeout.
    """
    client = RedisClient.from_url(f"{redis_url}?timeout=1")
    outcomes: list[object] = []

    async def commands() -> None:
        for _ in range(50):
            try:
                outcomes.append(await client.execute("INCR", f"{key_prefix}:n"))
            except BackendUnavailable as exc:
                outcomes.append(exc)

    threads = [threading.Thread(target=asyncio.run, args=(commands(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND)
    assert [False, False] == [thread.is_alive() for thread in threads]
    assert 100 == len(outcomes)
    assert all(isinstance(outcome, int | BackendUnavailable) for outcome in outcomes)
