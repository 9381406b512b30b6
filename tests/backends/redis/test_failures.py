"""RedisClient against a private server the tests kill, freeze and restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.backends.redis._command import encode_command  # the wire format, under the client
from scalepy.backends.redis._resp import Endpoint, open_connection  # one connection, no client
from scalepy.errors import BackendCommandError, BackendTimeout, BackendUnavailable
from tests.support.polling import eventually
from tests.support.redis_server import RedisClusterNode, RedisServer, free_port

if TYPE_CHECKING:
    from pathlib import Path

# Timing bounds carry a margin for a loaded CI machine; what they guard against is
# waiting for the next multiple of a timeout, or forever.
MARGIN = 0.5


async def test_a_killed_server_fails_fast_and_recovery_is_automatic(
    redis_server: RedisServer,
) -> None:
    """Commands fail with BackendUnavailable while Redis is down and work once it is back."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=1") as client:
        assert b"OK" == await client.execute("SET", "k", "v")
        redis_server.stop()
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.execute("GET", "k") for _ in range(10)), return_exceptions=True
        )
        assert all(isinstance(result, BackendUnavailable) for result in results)
        with pytest.raises(BackendUnavailable, match="could not connect"):
            await client.execute("GET", "k")
        assert time.monotonic() - started < 1 + MARGIN
        redis_server.start()
        assert None is await client.execute("GET", "k")  # a fresh server, reconnected


async def test_a_later_batch_times_out_at_its_own_deadline(redis_server: RedisServer) -> None:
    """A batch opened after an answered one still gets its whole timeout, not the first's."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        assert b"OK" == await client.execute("SET", "k", "v")  # answered; its deadline stays
        await asyncio.sleep(0.15)  # half a timeout later ...
        redis_server.pause()
        started = time.monotonic()
        with pytest.raises(BackendTimeout):  # ... a new batch waits its own 0.3 s
            await client.execute("GET", "k")
        elapsed = time.monotonic() - started
        redis_server.resume()
        assert 0.3 <= elapsed < 0.3 + MARGIN


async def test_a_command_may_carry_its_own_timeout(redis_server: RedisServer) -> None:
    """A per-command timeout, shorter or longer than the client's, bounds that caller."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.4") as client:
        assert b"OK" == await client.execute("SET", "k", "v")
        redis_server.pause()
        for timeout in (0.15, 0.6):
            started = time.monotonic()
            with pytest.raises(BackendTimeout, match=f"within {timeout} s"):
                await client.with_timeout(timeout).execute("GET", "k")
            assert timeout <= time.monotonic() - started < timeout + MARGIN / 2
        redis_server.resume()
        assert b"v" == await client.with_timeout(0.2).execute("GET", "k")


async def test_a_short_timeout_does_not_cut_off_a_longer_one(redis_server: RedisServer) -> None:
    """Callers of one tick time out at their own deadlines; the most patient bounds the others."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.4") as client:
        assert b"OK" == await client.execute("SET", "k", "v")
        redis_server.pause()
        started = time.monotonic()
        done: dict[float, float] = {}

        async def call(patience: float) -> None:
            with pytest.raises(BackendTimeout, match=f"within {patience} s"):
                await client.with_timeout(patience).execute("GET", "k")
            done[patience] = time.monotonic() - started

        await asyncio.gather(call(0.6), call(0.4), call(0.15))
        assert [0.15, 0.4, 0.6] == sorted(done, key=done.__getitem__)
        assert all(timeout <= elapsed < timeout + 0.2 for timeout, elapsed in done.items())
        # Dropped once the most patient caller gave up (a timeout later on a loaded machine).
        await eventually(lambda: 0 == client.statistics().pipeline.waiting, within=1.0)
        redis_server.resume()
        assert b"v" == await client.execute("GET", "k")


async def test_a_busy_event_loop_times_out_callers_but_keeps_the_connection(
    redis_url: str,
) -> None:
    """A batch written past its deadline (the loop was busy) is no sign of a frozen server.

    Its caller times out, but the connection, which every other caller and the
    process's subscriptions share, stays: the server answers at once.
    """
    async with RedisClient.from_url(f"{redis_url}?timeout=0.1") as client:
        connection = await client.execute("CLIENT", "ID")
        # Whether or not `first` is written at once (see `test_client`), `late`, of the
        # same tick, waits for the flush.
        first = asyncio.ensure_future(client.execute("PING"))
        late = asyncio.ensure_future(client.execute("PING"))
        # Runs right after `late` has submitted: the flush comes after the deadline.
        asyncio.get_running_loop().call_soon(time.sleep, 0.2)
        with pytest.raises(BackendTimeout):
            await late
        await asyncio.gather(first, return_exceptions=True)  # answered, or late as well
        await asyncio.sleep(0.2)  # past the point the connection would be judged
        assert connection == await client.execute("CLIENT", "ID")


def test_on_uvloop_a_watchdog_due_at_once_does_not_break_the_next_command(
    redis_server: RedisServer,
) -> None:
    """On uvloop a timer due within half a millisecond is a plain `Handle`, with no `when()`.

    Deadlines 0.1 ms apart: when the first expires, the watchdog of the next one is such
    a handle, and the caller woken by the first timeout sends its next command before
    that handle runs. The pipeline asked the handle `when()`: an AttributeError, which a
    service answered 500 (seen once in 50,000 requests under load).
    """
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> set[type[BaseException]]:
        async with RedisClient.from_url(f"{redis_server.url}?timeout=0.05") as client:
            await client.execute("PING")
            redis_server.pause()
            views = [client.with_timeout(0.05 + n / 10_000) for n in range(1, 40)]

            async def first_then_next() -> None:
                with contextlib.suppress(BackendTimeout):
                    await client.execute("GET", "k")
                await client.execute("GET", "k")  # times out too: the server is paused

            outcomes = await asyncio.gather(
                first_then_next(),
                *(view.execute("GET", "k") for view in views),
                return_exceptions=True,
            )
            redis_server.resume()
            return {type(outcome) for outcome in outcomes}

    # The frozen server's connection is dropped after its timeout: later commands may
    # learn of it as BackendUnavailable. Neither is a bug of the client.
    assert uvloop.run(scenario()) <= {BackendTimeout, BackendUnavailable}


async def test_a_frozen_server_times_out_within_the_bound_and_recovers(
    redis_server: RedisServer,
) -> None:
    """No caller waits past the timeout; the stalled connection is replaced afterwards."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        assert b"OK" == await client.execute("SET", "k", "v")
        redis_server.pause()
        started = time.monotonic()
        results = await asyncio.gather(
            *(client.execute("GET", "k") for _ in range(20)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        assert all(isinstance(result, BackendTimeout) for result in results)
        assert 0.3 <= elapsed < 0.3 + MARGIN
        # The stalled connection is gone (a timeout later on a loaded machine).
        await eventually(lambda: 0 == client.statistics().pipeline.waiting, within=1.0)
        redis_server.resume()
        assert b"v" == await client.execute("GET", "k")


async def test_connecting_is_bounded_by_the_connect_timeout(tmp_path: Path) -> None:
    """A server that accepts but never answers the login fails with BackendTimeout."""
    with RedisServer(tmp_path, "--requirepass", "secret") as server:
        server.pause()
        url = f"redis://:secret@127.0.0.1:{server.port}/0?connect_timeout=0.2&timeout=5"
        async with RedisClient.from_url(url) as client:
            started = time.monotonic()
            with pytest.raises(BackendTimeout, match=r"could not connect within 0\.2 s"):
                await client.execute("PING")
            assert time.monotonic() - started < 0.2 + MARGIN
            server.resume()
            assert await client.ping()


async def test_a_login_cut_by_a_restart_is_retried_on_the_new_server(tmp_path: Path) -> None:
    """A caller joining a connection attempt that the old server's death cuts is served.

    The attempt outlives the caller that started it (its command timed out while the
    frozen server withheld the login reply); the server is then replaced. The next
    command joins that attempt, which must meet the new server, not fail with it.
    """
    with RedisServer(tmp_path) as server:
        server.pause()  # accepts connections (the kernel's backlog), never answers HELLO
        url = f"redis://127.0.0.1:{server.port}/0?connect_timeout=5&timeout=0.2"
        async with RedisClient.from_url(url) as client:
            with pytest.raises(BackendTimeout):
                await client.execute("PING")  # the login goes on after this caller left
            server.stop()
            server.start()
            assert await client.ping()


async def test_a_command_on_a_dropped_connection_fails_at_once(redis_server: RedisServer) -> None:
    """Once the server dropped a connection, a command written to it fails now, not never."""
    endpoint = Endpoint(port=redis_server.port)  # the connection itself: no client, no timeout
    connection = await open_connection(endpoint, backend=redis_server.url)
    loop = asyncio.get_running_loop()
    before, after = loop.create_future(), loop.create_future()
    redis_server.pause()
    connection.send([encode_command(("PING",))], [before])
    redis_server.stop()
    with pytest.raises(BackendUnavailable, match="connection"):
        await before  # the loss is known
    connection.send([encode_command(("PING",))], [after])
    with pytest.raises(BackendUnavailable, match="connection closed"):
        await asyncio.wait_for(after, timeout=5)  # never answered on the old code


async def test_nothing_listening_is_unavailable() -> None:
    """Connection refused is BackendUnavailable, raised at once."""
    async with RedisClient.from_url(f"redis://127.0.0.1:{free_port()}/0") as client:
        with pytest.raises(BackendUnavailable, match="could not connect") as raised:
            await client.execute("PING")
        assert isinstance(raised.value, ConnectionError)
        assert str(client.config) == raised.value.backend


async def test_login_database_and_client_name_are_applied(tmp_path: Path) -> None:
    """Password, db and client name from the URL reach the server on connect."""
    with RedisServer(tmp_path, "--requirepass", "s3cret") as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/5?client_name=scalepy-test"
        async with RedisClient.from_url(url) as client:
            assert b"OK" == await client.execute("SET", "in-db-5", "yes")
            assert b"scalepy-test" == await client.execute("CLIENT", "GETNAME")
            assert b"yes" == await client.redis.get("in-db-5")  # redis-py, same config
        async with RedisClient.from_url(f"redis://:wrong@127.0.0.1:{server.port}/5") as client:
            with pytest.raises(BackendCommandError, match="WRONGPASS"):
                await client.execute("PING")


async def test_unix_socket_urls_connect(tmp_path: Path) -> None:
    """unix:// URLs reach a server listening on a socket file."""
    socket_path = tmp_path / "redis.sock"
    with RedisServer(tmp_path, "--unixsocket", str(socket_path), "--unixsocketperm", "700"):
        async with RedisClient.from_url(f"unix://{socket_path}?db=2") as client:
            assert b"OK" == await client.execute("SET", "k", "unix")
            assert b"unix" == await client.execute("GET", "k")
            assert b"unix" == await client.redis.get("k")


async def test_an_unreachable_cluster_is_unavailable() -> None:
    """When no startup node answers, commands fail with BackendUnavailable."""
    async with RedisClient.from_url(f"redis+cluster://127.0.0.1:{free_port()}") as cluster:
        with pytest.raises(BackendUnavailable, match="could not connect"):
            await cluster.execute("GET", "k")


async def test_a_frozen_cluster_node_times_out_and_recovers(tmp_path: Path) -> None:
    """The cluster path has the same bound and the same recovery as a single server."""
    with RedisClusterNode(tmp_path) as server:
        url = f"{server.url}?timeout=0.3"
        async with RedisClient.from_url(url) as cluster:
            assert b"OK" == await cluster.execute("SET", "k", "v")
            server.pause()
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                await cluster.execute("GET", "k")
            assert time.monotonic() - started < 0.3 + MARGIN
            # The stalled connection is gone (a timeout later on a loaded machine).
            await eventually(lambda: 0 == cluster.statistics().pipeline.waiting, within=1.0)
            server.resume()
            assert b"v" == await cluster.execute("GET", "k")
