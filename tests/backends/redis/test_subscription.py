"""`Subscription`: delivery on Redis and Redis Cluster, reconnection after failures."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest
from redis.crc import key_slot

from scalepy.backends.redis import RedisClient, Subscription, SubscriptionStatistics
from scalepy.errors import BackendUnavailable, ConfigurationError
from tests.support.cluster_slots import empty_slot
from tests.support.redis_server import RedisClusterNode, RedisServer, free_port

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

WAIT = 10.0  # the most any event below may take; they usually take milliseconds


class Listener:
    """Collects messages and counts (dis)connections, with events to await them."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.arrived = asyncio.Event()
        self.ups = self.downs = 0
        self.up = asyncio.Event()
        self.down = asyncio.Event()

    def on_message(self, data: bytes) -> None:
        """Keep the message."""
        self.messages.append(data)
        self.arrived.set()

    def on_connected(self) -> None:
        """Count a subscription."""
        self.ups += 1
        self.up.set()

    def on_disconnected(self) -> None:
        """Count a lost connection."""
        self.downs += 1
        self.down.set()

    def subscribe(self, client: RedisClient, channel: str, **options: Any) -> Subscription:
        """A subscription reporting to this listener."""
        return Subscription(
            client,
            channel,
            self.on_message,
            on_connected=self.on_connected,
            on_disconnected=self.on_disconnected,
            **options,
        )

    async def receive(self, count: int) -> list[bytes]:
        """Wait until `count` messages have arrived; return them."""
        async with asyncio.timeout(WAIT):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages

    async def next_up(self) -> None:
        """Wait for the next subscription."""
        self.up.clear()
        await asyncio.wait_for(self.up.wait(), WAIT)

    async def next_down(self) -> None:
        """Wait for the next lost connection."""
        self.down.clear()
        await asyncio.wait_for(self.down.wait(), WAIT)


@pytest.fixture
def channel(key_prefix: str) -> str:
    """A channel no other test uses."""
    return f"{key_prefix}:{{events}}"


@pytest.mark.parametrize("sharded", [False, True], ids=["classic", "sharded"])
async def test_messages_arrive_in_order(redis: RedisClient, channel: str, sharded: bool) -> None:
    """Once start() returns, every message published is delivered, in publishing order."""
    listener = Listener()
    async with listener.subscribe(redis, channel, sharded=sharded) as subscription:
        await subscription.start()
        assert (True, 1) == (subscription.connected, listener.ups)
        command = "SPUBLISH" if sharded else "PUBLISH"
        for index in range(20):
            await redis.execute(command, channel, f"m{index}")
        assert [f"m{i}".encode() for i in range(20)] == await listener.receive(20)
        stats = subscription.statistics()
        expected = SubscriptionStatistics(
            channel=channel, sharded=sharded, connected=True, connects=1, failures=0, messages=20
        )
        assert expected == stats
    assert (False, 0) == (subscription.connected, listener.downs)


async def test_messages_interleaved_with_replies_go_to_the_subscriber_alone(
    redis: RedisClient, channel: str
) -> None:
    """Pushes between replies on one connection: each caller gets its reply, in order.

    The client publishes to its own subscription while 1,000 other commands are in
    flight on the same connection: every ECHO gets its own text back, and the
    subscriber gets every message, in publishing order.
    """
    listener = Listener()
    publish = "SPUBLISH" if redis.is_cluster else "PUBLISH"
    async with listener.subscribe(redis, channel, sharded=redis.is_cluster) as subscription:
        await subscription.start()

        async def echo(index: int) -> bytes:
            reply: bytes = await redis.execute("ECHO", f"reply {index}")
            return reply

        async def publish_one(index: int) -> None:
            await redis.execute(publish, channel, f"m{index}")

        calls = [echo(i) if i % 4 else publish_one(i // 4) for i in range(1_000)]
        replies = await asyncio.gather(*calls)
        assert [f"reply {i}".encode() for i in range(1_000) if i % 4] == [
            reply for i, reply in enumerate(replies) if i % 4
        ]
        assert [f"m{i}".encode() for i in range(250)] == await listener.receive(250)
        assert 250 == subscription.statistics().messages


async def test_a_stale_cluster_slot_map_is_corrected_by_moved(
    cluster_url: str, channel: str
) -> None:
    """A sharded subscription sent to a node that does not own the slot follows MOVED."""
    async with RedisClient.from_url(cluster_url) as client:
        slot = key_slot(channel.encode())
        ranges: list[Any] = await client.execute("CLUSTER", "SLOTS")
        other = next(r[2] for r in ranges if not r[0] <= slot <= r[1])
        listener = Listener()
        async with listener.subscribe(client, channel, sharded=True) as subscription:
            # As if the slot had moved to `other`: the subscription goes there first.
            subscription._redirect = f"MOVED {slot} {other[0].decode()}:{other[1]}"
            await subscription.start()
            await client.execute("SPUBLISH", channel, "found")
            assert [b"found"] == await listener.receive(1)
            assert (1, 1) == (subscription.statistics().failures, listener.ups)


async def test_a_sharded_subscription_follows_its_slot_to_a_new_owner(
    cluster_url: str, key_prefix: str
) -> None:
    """The channel's slot given to another node: `sunsubscribe`, MOVED, subscribed there."""
    async with (
        RedisClient.from_url(cluster_url) as client,
        empty_slot(client, key_prefix) as slot,
    ):
        listener = Listener()
        options = {"sharded": True, "min_delay": 0.05, "max_delay": 0.2}
        async with listener.subscribe(client, slot.key, **options) as subscription:
            await subscription.start()
            listener.up.clear()  # the loss may come before SETSLOT returns: no next_down()
            await slot.move()
            await asyncio.wait_for(listener.down.wait(), WAIT)
            await asyncio.wait_for(listener.up.wait(), WAIT)
            await client.execute("SPUBLISH", slot.key, "moved")
            assert [b"moved"] == await listener.receive(1)
            assert 2 <= subscription.statistics().failures  # ended, then MOVED


async def test_a_slot_leaving_the_node_ends_a_sharded_subscription_until_it_is_back(
    tmp_path: Path, channel: str
) -> None:
    """The server's own `sunsubscribe` (its slot went away) is a loss; it resubscribes."""
    with RedisClusterNode(tmp_path) as node:
        async with (
            RedisClient.from_url(f"{node.url}?timeout=0.5") as client,
            RedisClient.from_url(f"redis://127.0.0.1:{node.port}/0") as admin,
        ):
            listener = Listener()
            options = {"sharded": True, "min_delay": 0.05, "max_delay": 0.1}
            async with listener.subscribe(client, channel, **options) as subscription:
                await subscription.start()
                slot = key_slot(channel.encode())
                listener.up.clear()  # the loss may come before DELSLOTS returns
                await admin.execute("CLUSTER", "DELSLOTS", slot)
                await asyncio.wait_for(listener.down.wait(), WAIT)
                assert not subscription.connected
                await admin.execute("CLUSTER", "ADDSLOTS", slot)
                await asyncio.wait_for(listener.up.wait(), WAIT)
                await client.execute("SPUBLISH", channel, "back")
                assert [b"back"] == await listener.receive(1)


@pytest.mark.parametrize("sharded", [False, True], ids=["classic", "sharded"])
async def test_a_restarted_server_is_resubscribed(
    outage_server: RedisServer, channel: str, sharded: bool
) -> None:
    """Redis stopped: connected turns False; restarted: True again, and messages flow."""
    async with RedisClient.from_url(f"{outage_server.url}?timeout=0.5") as client:
        listener = Listener()
        options = {"sharded": sharded, "min_delay": 0.05, "max_delay": 0.2}
        async with listener.subscribe(client, channel, **options) as sub:
            await sub.start()
            outage_server.stop()
            await listener.next_down()
            assert (False, 1) == (sub.connected, listener.downs)
            outage_server.start()
            await listener.next_up()
            assert (True, 2) == (sub.connected, listener.ups)
            await client.execute("SPUBLISH" if sharded else "PUBLISH", channel, "back")
            assert [b"back"] == await listener.receive(1)
            assert 1 <= sub.statistics().failures
            assert "connected connects=2" in repr(sub)


async def test_a_killed_connection_is_replaced(redis_server: RedisServer, channel: str) -> None:
    """CLIENT KILL of the subscriber's connection: it reconnects by itself."""
    async with (
        RedisClient.from_url(redis_server.url) as client,
        RedisClient.from_url(redis_server.url) as killer,
    ):
        listener = Listener()
        async with listener.subscribe(client, channel, min_delay=0.05) as subscription:
            await subscription.start()
            assert 1 == await killer.execute("CLIENT", "KILL", "TYPE", "pubsub")
            await listener.next_up()
            assert (1, 2) == (listener.downs, listener.ups)


async def test_a_connection_killed_with_commands_in_flight_fails_them_and_resubscribes(
    outage_server: RedisServer, channel: str
) -> None:
    """One connection, subscribed and busy, killed: every caller gets its own reply or an error.

    The ECHOs sent before a BLPOP that holds the connection are answered, each with
    its own text; the BLPOP and the ECHOs queued behind it fail with
    BackendUnavailable when the connection is killed; the subscription reports the
    loss, comes back, and later commands get their own replies again.
    """
    async with (
        RedisClient.from_url(f"{outage_server.url}?timeout=10") as client,
        RedisClient.from_url(f"redis://127.0.0.1:{outage_server.port}/0") as killer,
    ):
        listener = Listener()
        async with listener.subscribe(client, channel, sharded=client.is_cluster) as subscription:
            await subscription.start()
            own_id = await client.execute("CLIENT", "ID")

            async def echo(index: int) -> bytes | None:
                try:
                    reply: bytes = await client.execute("ECHO", f"reply {index}")
                except BackendUnavailable:
                    return None
                return reply

            before = [asyncio.ensure_future(echo(i)) for i in range(50)]
            blocked = asyncio.ensure_future(client.execute("BLPOP", f"{channel}:nothing", 9))
            behind = [asyncio.ensure_future(echo(i)) for i in range(50, 100)]
            assert [f"reply {i}".encode() for i in range(50)] == await asyncio.gather(*before)
            assert 1 == await killer.execute("CLIENT", "KILL", "ID", own_id)
            with pytest.raises(BackendUnavailable):
                await blocked
            assert [None] * 50 == await asyncio.gather(*behind)
            await listener.next_up()
            assert (1, 2) == (listener.downs, listener.ups)
            after = await asyncio.gather(*(echo(i) for i in range(100)))
            assert [f"reply {i}".encode() for i in range(100)] == after
            assert own_id != await client.execute("CLIENT", "ID")
            await client.execute(
                "SPUBLISH" if client.is_cluster else "PUBLISH", channel, "still here"
            )
            assert [b"still here"] == await listener.receive(1)


async def test_subscriptions_to_one_channel_share_one_server_subscription(
    redis_url: str, channel: str
) -> None:
    """Two subscribers of a channel on one client: one SUBSCRIBE, kept until the last leaves."""
    async with RedisClient.from_url(redis_url) as client:
        first, second = Listener(), Listener()
        one, two = first.subscribe(client, channel), second.subscribe(client, channel)
        await one.start()
        await two.start()
        assert (1, 1) == (first.ups, second.ups)
        assert [channel.encode(), 1] == await client.execute("PUBSUB", "NUMSUB", channel)
        await client.execute("PUBLISH", channel, "both")
        assert [b"both"] == await first.receive(1)
        assert [b"both"] == await second.receive(1)
        await one.aclose()
        await client.execute("PUBLISH", channel, "second")
        assert [b"both", b"second"] == await second.receive(2)
        assert [channel.encode(), 1] == await client.execute("PUBSUB", "NUMSUB", channel)
        await two.aclose()
        assert [channel.encode(), 0] == await client.execute("PUBSUB", "NUMSUB", channel)
        assert [b"both"] == first.messages


async def test_a_server_refusing_resp3_gives_subscriptions_a_connection_of_their_own(
    tmp_path: Path, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """HELLO renamed away: commands run over RESP2, subscriptions on a second connection.

    Both log in over RESP2 (AUTH, SELECT, CLIENT SETNAME).
    """
    options = ("--rename-command", "HELLO", "", "--requirepass", "s3cret")
    with RedisServer(tmp_path, *options) as server:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3?client_name=resp2-only"
        async with RedisClient.from_url(url) as client:
            assert b"OK" == await client.execute("SET", f"{channel}:in-db-3", "yes")
            listener = Listener()
            async with listener.subscribe(client, channel) as subscription:
                with caplog.at_level(logging.INFO, "scalepy.backends.redis"):
                    await subscription.start()
                assert subscription.connected
                await client.execute("PUBLISH", channel, "over resp2")
                assert [b"over resp2"] == await listener.receive(1)
                listed: bytes = await client.execute("CLIENT", "LIST")
            logins = sorted(
                (fields["flags"], fields["db"])
                for fields in (
                    dict(part.split("=", 1) for part in line.split())
                    for line in listed.decode().splitlines()
                )
                if fields["name"] == "resp2-only" and fields["resp"] == "2"
            )
        assert [("N", "3"), ("P", "3")] == logins  # the command connection, the subscriber
        assert any("refused RESP3" in record.getMessage() for record in caplog.records)


async def test_a_frozen_server_is_noticed_by_ping(
    redis_server: RedisServer, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering (SIGSTOP) is dropped after ping_interval + timeout."""
    async with RedisClient.from_url(f"{redis_server.url}?timeout=0.2") as client:
        listener = Listener()
        options = {"ping_interval": 0.2, "min_delay": 0.05, "max_delay": 0.2}
        async with listener.subscribe(client, channel, **options) as subscription:
            await subscription.start()
            redis_server.pause()
            started = time.monotonic()
            with caplog.at_level(logging.INFO, "scalepy.backends.redis"):
                await listener.next_down()
                assert time.monotonic() - started < 0.2 + 0.2 + 0.2 + 1.0  # poll + ping + slack
                redis_server.resume()
                await listener.next_up()
            messages = [record.getMessage() for record in caplog.records]
            assert any("lost, resubscribing" in message for message in messages)
            assert any("restored" in message for message in messages)


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_an_unreachable_server_does_not_block_start(
    scheme: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """start() returns after a bounded wait; the task keeps retrying, quietly."""
    url = f"{scheme}://127.0.0.1:{free_port()}?connect_timeout=0.2&timeout=0.2"
    async with RedisClient.from_url(url) as client:
        listener = Listener()
        subscription = listener.subscribe(client, channel, min_delay=0.01, max_delay=0.05)
        started = time.monotonic()
        await subscription.start()
        assert time.monotonic() - started < 0.4 + 0.5
        assert (False, 0) == (subscription.connected, listener.ups)
        assert 3 <= subscription.statistics().failures  # refused at once, retried meanwhile
        await subscription.aclose()
        assert "stopped" in repr(subscription)
    assert [] == [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_a_failing_callback_is_logged_and_delivery_goes_on(
    redis_url: str, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception from on_message is logged; the next message is still delivered."""
    received: list[bytes] = []
    arrived = asyncio.Event()

    def on_message(data: bytes) -> None:
        if data == b"bad":
            raise ValueError("callback bug")
        received.append(data)
        arrived.set()

    async with (
        RedisClient.from_url(redis_url) as client,
        Subscription(client, channel, on_message) as subscription,
    ):
        await subscription.start()
        await client.execute("PUBLISH", channel, "bad")
        await client.execute("PUBLISH", channel, "good")
        await asyncio.wait_for(arrived.wait(), WAIT)
    assert [b"good"] == received
    assert ["a callback of the subscription"] == [r.getMessage()[:30] for r in caplog.records]


async def test_it_can_be_started_again_after_aclose(redis_url: str, channel: str) -> None:
    """aclose() stops it; start() subscribes again; start() while running is a no-op."""
    async with RedisClient.from_url(redis_url) as client:
        listener = Listener()
        subscription = listener.subscribe(client, channel)
        await subscription.start()
        await subscription.start()
        await subscription.aclose()
        await subscription.aclose()
        assert (False, 1) == (subscription.connected, listener.ups)
        await subscription.start()
        assert (True, 2) == (subscription.connected, listener.ups)
        await subscription.aclose()
        assert 0 == listener.downs  # closing on purpose is not a lost connection


def test_start_soon_needs_a_running_loop(redis_url: str) -> None:
    """Outside an event loop there is nothing to run the task: RuntimeError."""
    subscription = Subscription(RedisClient.from_url(redis_url), "events", print)
    with pytest.raises(RuntimeError):
        subscription.start_soon()


BAD_OPTIONS: list[tuple[Callable[[RedisClient], object], str]] = [
    (lambda client: Subscription(client, "", print), "non-empty channel"),
    (lambda client: Subscription(client, "c", print, min_delay=0), "min_delay must be a finite"),
    (
        lambda client: Subscription(client, "c", print, min_delay=2.0, max_delay=1.0),
        "max_delay must be a finite number >= 2.0",
    ),
    (
        lambda client: Subscription(client, "c", print, ping_interval=float("inf")),
        "ping_interval must be a finite number",
    ),
]


@pytest.mark.parametrize(("build", "message"), BAD_OPTIONS)
def test_bad_options_are_rejected(
    redis_url: str, build: Callable[[RedisClient], object], message: str
) -> None:
    """Invalid options raise ConfigurationError naming what is allowed."""
    with pytest.raises(ConfigurationError, match=message):
        build(RedisClient.from_url(redis_url))
