"""`InvalidationBus`: delivery between processes, heartbeats, health and its staleness bound."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.backends.redis import RedisClient

# The internal invalidation bus and its wire format, tested directly.
from scalepy.cache._bus import (
    Heartbeat,
    Invalidation,
    InvalidationBus,
    decode,
    encode_heartbeat,
    encode_invalidation,
)
from scalepy.cache._metrics import BUS_RESETS
from scalepy.errors import BackendError, ConfigurationError
from scalepy.testing import RecordingInstrumentation
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from multiprocessing.queues import Queue

    from tests.support.redis_server import RedisServer

SPAWN = multiprocessing.get_context("spawn")
WAIT = 10.0  # the most any awaited event below may take; they usually take milliseconds


class Peer:
    """A bus recording what it is told, with events to await each invalidation and reset."""

    def __init__(self, client: RedisClient, channel: str, heartbeat: float = 0.5) -> None:
        self.received: list[Invalidation] = []
        self.resets = 0
        self.arrived = asyncio.Event()
        self.reset = asyncio.Event()
        self.instrumentation = RecordingInstrumentation()
        self.bus = InvalidationBus(
            client,
            channel,
            on_invalidation=self._on_invalidation,
            on_reset=self._on_reset,
            heartbeat=heartbeat,
            instrumentation=self.instrumentation,
        )

    def _on_invalidation(self, invalidation: Invalidation) -> None:
        self.received.append(invalidation)
        self.arrived.set()

    def _on_reset(self) -> None:
        self.resets += 1
        self.reset.set()

    async def receive(self, count: int) -> list[Invalidation]:
        """Wait until `count` invalidations have arrived; return them."""
        async with asyncio.timeout(WAIT):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def healthy(self) -> bool:
        """The bus's health now (a call, so that type checkers do not pin its value)."""
        return self.bus.healthy

    async def next_reset(self) -> None:
        """Wait for the next on_reset."""
        self.reset.clear()
        await asyncio.wait_for(self.reset.wait(), WAIT)


@pytest.fixture
def channel(key_prefix: str) -> str:
    """A channel no other test uses."""
    return f"{key_prefix}:{{bus}}"


@pytest.fixture
async def pair(redis: RedisClient, channel: str) -> AsyncIterator[tuple[Peer, Peer]]:
    """Two started buses on one channel, standalone then on the cluster (sharded)."""
    a, b = Peer(redis, channel), Peer(redis, channel)
    await a.bus.start()
    await b.bus.start()
    yield a, b
    await a.bus.aclose()
    await b.bus.aclose()


# -- two buses in one process --------------------------------------------------


async def test_invalidations_reach_the_other_bus_only(pair: tuple[Peer, Peer]) -> None:
    """An invalidation reaches the other bus with its sender's origin, never the sender."""
    a, b = pair
    await a.bus.publish(Invalidation(keys=("k1", "k2"), tags=("t",), origin="ignored"))
    await b.bus.publish(Invalidation(clear=True))
    expected = Invalidation(keys=("k1", "k2"), tags=("t",), origin=a.bus.origin)
    assert [expected] == await b.receive(1)
    assert [Invalidation(clear=True, origin=b.bus.origin)] == await a.receive(1)
    assert a.bus.origin != b.bus.origin


async def test_an_empty_invalidation_is_not_sent(pair: tuple[Peer, Peer]) -> None:
    """Nothing to drop, nothing published: b's first delivery is a's next real one."""
    a, b = pair
    await a.bus.publish(Invalidation())
    await a.bus.publish(Invalidation(tags=("t",)))
    assert [Invalidation(tags=("t",), origin=a.bus.origin)] == await b.receive(1)


async def test_started_buses_are_healthy_and_reset_once(pair: tuple[Peer, Peer]) -> None:
    """start() returns once the own heartbeat came back; turning healthy called on_reset."""
    for peer in pair:
        assert (True, 1) == (peer.bus.healthy, peer.resets)
        assert 1 == peer.instrumentation.value(BUS_RESETS.name)
        assert "healthy" in repr(peer.bus)
        assert peer.bus.heartbeat == peer.bus.staleness_bound / 2


async def test_unreadable_messages_clear_and_foreign_heartbeats_are_ignored(
    pair: tuple[Peer, Peer], redis: RedisClient, channel: str
) -> None:
    """Garbage may have been an invalidation: clear; heartbeats of other versions: ignored."""
    _, b = pair
    command = "SPUBLISH" if redis.is_cluster else "PUBLISH"
    for payload in (b'[2,"x","h",1.0]', b'[1,"x","h",1.0]', b"not json", b'[2,"x","i",0]'):
        await redis.execute(command, channel, payload)
    assert [Invalidation(clear=True)] * 2 == await b.receive(2)
    assert (
        b.instrumentation.value(
            "scalepy.cache.bus.messages", {"scalepy.cache.message.kind": "unreadable"}
        )
        == 2
    )
    assert (True, 1) == (b.bus.healthy, b.resets)  # x's heartbeat did not count as b's own


# -- health and its staleness bound ---------------------------------------------


async def test_a_frozen_server_turns_the_bus_unhealthy_within_the_bound(
    redis_server: RedisServer, channel: str
) -> None:
    """SIGSTOP: unhealthy at most staleness_bound later; resubscribed after SIGCONT: reset."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        peer = Peer(client, channel, heartbeat=0.2)
        await peer.bus.start()
        assert peer.healthy()
        redis_server.pause()
        paused = time.monotonic()
        # No heartbeat sent after the pause can come back, so this holds at the deadline
        # whatever the scheduling: no waiting on a race here.
        await asyncio.sleep(paused + peer.bus.staleness_bound - time.monotonic() + 0.01)
        assert not peer.healthy()
        await eventually(lambda: not peer.bus.subscribed)  # the PING watchdog gave up
        redis_server.resume()
        await peer.next_reset()
        assert (True, 2) == (peer.healthy(), peer.resets)
        await peer.bus.aclose()
        assert not peer.healthy()


async def test_a_late_subscriber_catches_up_without_a_reset(pair: tuple[Peer, Peer]) -> None:
    """A blocked event loop is unhealthy, then healthy again with its L1 kept: nothing was lost."""
    a, b = pair
    await a.bus.publish(Invalidation(keys=("before",)))
    time.sleep(a.bus.staleness_bound + 0.05)  # noqa: ASYNC251 - blocking the loop is the test
    assert not a.healthy()
    assert not b.healthy()
    await eventually(lambda: a.healthy() and b.healthy())
    assert [Invalidation(keys=("before",), origin=a.bus.origin)] == b.received
    assert (1, 1) == (a.resets, b.resets)
    assert (True, True) == (a.bus.subscribed, b.bus.subscribed)


async def test_a_restarted_server_resets_every_bus(redis_server: RedisServer, channel: str) -> None:
    """Redis restarted: both buses are unhealthy, then reset and deliver again."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.3") as client:
        a, b = Peer(client, channel, heartbeat=0.2), Peer(client, channel, heartbeat=0.2)
        await a.bus.start()
        await b.bus.start()
        redis_server.stop()
        with pytest.raises(BackendError):
            await a.bus.publish(Invalidation(keys=("lost",)))
        await eventually(lambda: not (a.bus.healthy or b.bus.healthy))
        redis_server.start()
        await asyncio.gather(a.next_reset(), b.next_reset())
        await a.bus.publish(Invalidation(keys=("after",)))
        assert [Invalidation(keys=("after",), origin=a.bus.origin)] == await b.receive(1)
        assert (2, 2) == (a.resets, b.resets)
        await a.bus.aclose()
        await b.bus.aclose()


async def test_start_returns_when_redis_is_unreachable(channel: str) -> None:
    """With no Redis, start() gives up after a bounded wait and the bus stays unhealthy."""
    from tests.support.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0?connect_timeout=0.1&timeout=0.1"
    async with RedisClient.from_url(url) as client:
        peer = Peer(client, channel, heartbeat=0.1)
        started = time.monotonic()
        await peer.bus.start()
        assert time.monotonic() - started < 0.3 + 1.0
        assert (False, 0) == (peer.bus.healthy, peer.resets)
        assert "unhealthy" in repr(peer.bus)
        await peer.bus.aclose()


def test_heartbeat_must_be_positive(redis_url: str) -> None:
    """A heartbeat that is not a finite number > 0 is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="heartbeat must be a finite number > 0"):
        InvalidationBus(
            RedisClient.from_url(redis_url),
            "c",
            on_invalidation=print,
            on_reset=print,
            heartbeat=0,
        )


# -- the wire format -----------------------------------------------------------

texts = st.text(max_size=20)


@given(
    keys=st.lists(texts, max_size=5),
    tags=st.lists(texts, max_size=5),
    clear=st.booleans(),
    origin=st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
)
def test_invalidations_survive_the_wire(
    keys: list[str], tags: list[str], clear: bool, origin: str
) -> None:
    """Any keys and tags (quotes, unicode, empty strings) decode to what was encoded."""
    invalidation = Invalidation(tuple(keys), tuple(tags), clear, origin)
    assert invalidation == decode(encode_invalidation(origin, invalidation))


def test_heartbeats_survive_the_wire() -> None:
    """A heartbeat decodes to its origin and send time; the encoding stays compact."""
    payload = encode_heartbeat("ab12", 1234.5)
    assert Heartbeat("ab12", 1234.5) == decode(payload)
    assert b'[1,"ab12","h",1234.5]' == payload


@pytest.mark.parametrize(
    "payload",
    [b"", b"{}", b"[1]", b'[1,"o","i",0,["k"]]', b'[1,"o","i",0,[1],[]]', b'[1,2,"i",0,[],[]]'],
)
def test_malformed_invalidations_decode_to_clear(payload: bytes) -> None:
    """Anything that is not a well-formed version-1 message is read as 'drop everything'."""
    assert Invalidation(clear=True) == decode(payload)


@pytest.mark.parametrize("payload", [b'[1,"o","h"]', b'[1,"o","h",true]', b'[1,3,"h",1]'])
def test_malformed_heartbeats_are_ignored(payload: bytes) -> None:
    """A heartbeat that cannot be read is ignored rather than clearing L1."""
    assert decode(payload) is None


# -- a second OS process --------------------------------------------------------


def peer_process(url: str, channel: str, commands: Queue[str], reports: Queue[Any]) -> None:
    """Process entry point: a bus that reports what it receives and publishes when told."""
    asyncio.run(_peer_process(url, channel, commands, reports))


async def _peer_process(url: str, channel: str, commands: Queue[str], reports: Queue[Any]) -> None:
    async with RedisClient.from_url(url) as client:
        bus = InvalidationBus(
            client,
            channel,
            on_invalidation=lambda inv: reports.put(("received", inv)),
            on_reset=lambda: None,
        )
        await bus.start()
        reports.put(("ready", bus.origin, bus.healthy))
        while (command := await asyncio.to_thread(commands.get, True, WAIT)) != "stop":
            await bus.publish(Invalidation(keys=(command,)))
        await bus.aclose()


@pytest.mark.parametrize("target", ["standalone", "cluster"])
async def test_invalidations_cross_processes(
    target: str, redis_url: str, cluster_url: str, channel: str
) -> None:
    """A bus in another OS process gets this process's invalidations, and the reverse."""
    url = redis_url if target == "standalone" else cluster_url
    commands: Queue[str] = SPAWN.Queue()
    reports: Queue[Any] = SPAWN.Queue()
    process = SPAWN.Process(target=peer_process, args=(url, channel, commands, reports))
    process.start()
    try:
        async with RedisClient.from_url(url) as client:
            here = Peer(client, channel)
            await here.bus.start()
            _, origin, healthy = await asyncio.to_thread(reports.get, True, 30)
            assert healthy
            await here.bus.publish(Invalidation(keys=("user:1",), tags=("users",)))
            expected = Invalidation(keys=("user:1",), tags=("users",), origin=here.bus.origin)
            assert ("received", expected) == await asyncio.to_thread(reports.get, True, WAIT)
            commands.put("from-the-other-process")
            received = await here.receive(1)
            assert [Invalidation(keys=("from-the-other-process",), origin=origin)] == received
            await here.bus.aclose()
    finally:
        commands.put("stop")
        process.join(timeout=30)
    assert 0 == process.exitcode
