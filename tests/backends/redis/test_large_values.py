"""A large value on the shared connection: other callers are never cut off with it.

A 60 MiB transfer takes longer than a 0.1 s timeout on loopback. The callers whose
commands wait behind it may time out, each alone, but the connection makes
progress the whole time, so it is kept: the large command and everything after it
succeed. A frozen server is still told apart and dropped.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.errors import BackendTimeout, BackendUnavailable
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from tests.support.redis_server import RedisServer

LARGE = b"x" * (60 << 20)
TIMEOUT = 0.1
LARGE_TIMEOUT = 30.0  # the large command's own: generous, on a loaded machine


@pytest.fixture(params=["standalone", "cluster"])
def url(request: pytest.FixtureRequest, redis_url: str, cluster_url: str) -> str:
    """The shared server, then the cluster, with a 0.1 s timeout."""
    return f"{redis_url if request.param == 'standalone' else cluster_url}?timeout={TIMEOUT}"


async def _alongside(
    client: RedisClient, large: Awaitable[Any], key_prefix: str
) -> tuple[Any, list[BaseException | Any]]:
    """Run 20 callers issuing small commands, one after another, while `large` runs."""
    big = asyncio.ensure_future(large)
    small: list[BaseException | Any] = []

    async def caller(number: int) -> None:
        key = f"{key_prefix}:small:{number}"
        while not big.done():
            try:
                small.append(await client.execute("SET", key, number))
            except BackendTimeout as exc:  # waited behind the large one: this caller alone
                small.append(exc)

    await asyncio.gather(*(caller(number) for number in range(20)))
    return await big, small


async def _connection_id(client: RedisClient) -> Any:
    return None if client.is_cluster else await client.execute("CLIENT", "ID")


async def test_a_large_write_cuts_nobody_off(url: str, key_prefix: str) -> None:
    """While a 60 MiB SET travels, small commands succeed or time out alone; none is dropped."""
    async with RedisClient.from_url(url) as client:
        key = f"{key_prefix}:large"
        connection = await _connection_id(client)
        write = client.with_timeout(LARGE_TIMEOUT).execute("SET", key, LARGE)
        reply, small = await _alongside(client, write, key_prefix)
        assert b"OK" == reply
        assert set() == {type(result) for result in small} - {bytes, BackendTimeout}
        assert connection == await _connection_id(client)  # never reopened
        assert [b"OK"] * 20 == await asyncio.gather(
            *(client.execute("SET", f"{key_prefix}:after:{n}", n) for n in range(20))
        )
        assert len(LARGE) == await client.execute("STRLEN", key)


async def test_a_large_reply_cuts_nobody_off(url: str, key_prefix: str) -> None:
    """While a 60 MiB GET reply travels, small commands succeed or time out alone."""
    async with RedisClient.from_url(url) as client:
        key = f"{key_prefix}:large"
        await client.with_timeout(LARGE_TIMEOUT).execute("SET", key, LARGE)
        connection = await _connection_id(client)
        read = client.with_timeout(LARGE_TIMEOUT).execute("GET", key)
        reply, small = await _alongside(client, read, key_prefix)
        assert len(LARGE) == len(reply)
        assert set() == {type(result) for result in small} - {bytes, BackendTimeout}
        assert connection == await _connection_id(client)
        assert b"1" == await client.execute("GET", f"{key_prefix}:small:1")


async def test_a_frozen_server_is_dropped_during_a_large_write(
    redis_server: RedisServer,
) -> None:
    """A write backlog that stops draining is a stall: callers time out, the connection goes."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        assert b"OK" == await client.execute("SET", "k", "v")
        redis_server.pause()
        started = time.monotonic()
        calls = [client.execute("SET", "large", LARGE), client.execute("GET", "k")]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [BackendTimeout, BackendTimeout] == [type(result) for result in results]
        # Generous on a loaded machine: what this guards against is a wait without end.
        assert time.monotonic() - started < 0.3 + 3.0
        # Dropped at once, or a timeout later where a loaded machine wrote the batch late.
        await eventually(lambda: 0 == client.statistics().pipeline.waiting, within=1.0)
        redis_server.resume()
        assert b"v" == await client.execute("GET", "k")
        assert None is await client.execute("GET", "large")  # the cut-off write never landed


async def test_a_finished_command_holds_no_memory(redis_url: str, key_prefix: str) -> None:
    """Neither a command's bytes nor its reply outlive the call, however long its timeout."""
    value = b"x" * (1 << 20)
    key = f"{key_prefix}:value"
    async with RedisClient.from_url(f"{redis_url}?timeout=30") as client:
        await client.execute("SET", key, value)
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for _ in range(20):
                assert b"OK" == await client.execute("SET", key, value)
                assert len(value) == len(await client.execute("GET", key))
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert after - before < 4 << 20  # 40 MiB were held until each call's deadline


async def test_closing_during_a_stalled_large_write_drops_it(redis_server: RedisServer) -> None:
    """A client closed while its write cannot drain drops the connection at once.

    Closing gracefully flushes what is buffered first: against a frozen server the
    socket stayed open after `aclose()`, its caller waited for its own (longer)
    timeout, and a loop that ended before then leaked the socket.
    """
    client = RedisClient.from_url(f"{redis_server.url}?timeout=0.2")
    assert b"OK" == await client.execute("SET", "k", "v")
    redis_server.pause()
    large = asyncio.ensure_future(client.with_timeout(LARGE_TIMEOUT).execute("SET", "large", LARGE))
    await eventually(lambda: 1 == client.statistics().pipeline.waiting)  # written, stuck
    await client.aclose()  # waits out the client's timeout for the reply, then closes
    with pytest.raises(BackendUnavailable):
        async with asyncio.timeout(LARGE_TIMEOUT / 2):  # not the command's own timeout
            await large
    redis_server.resume()
    async with RedisClient.from_url(redis_server.url) as fresh:
        assert b"v" == await fresh.execute("GET", "k")
        assert 0 == await fresh.execute("EXISTS", "large")
