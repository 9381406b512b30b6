"""RedisClient: automatic pipelining, raw replies, errors per caller, on a server and a cluster."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from scalepy.backends import KeySpace, MemoryConfig, parse_backend_url
from scalepy.backends.redis import PipelineStatistics, RedisClient
from scalepy.backends.redis._metrics import PIPELINE_SIZE
from scalepy.errors import BackendCommandError, BackendUnavailable, ConfigurationError
from scalepy.testing import RecordingInstrumentation
from tests.support.cluster_slots import empty_slot


async def test_commands_return_raw_replies(redis: RedisClient, key_prefix: str) -> None:
    """Replies are RESP2 values: bytes, int, None, lists."""
    key = f"{key_prefix}:value"
    assert b"OK" == await redis.execute("SET", key, "héllo")
    assert "héllo".encode() == await redis.execute("GET", key)
    assert None is await redis.execute("GET", f"{key_prefix}:missing")
    assert 3 == await redis.execute("INCRBY", f"{key_prefix}:n", 3)
    assert 2 == await redis.execute("RPUSH", f"{key_prefix}:l", "a", "b")
    assert [b"a", b"b"] == await redis.execute("LRANGE", f"{key_prefix}:l", 0, -1)
    assert await redis.ping()


async def test_replies_keep_their_resp2_shapes_over_resp3(
    redis: RedisClient, key_prefix: str
) -> None:
    """The connection speaks RESP3; maps, doubles, score pairs and booleans read as in RESP2."""
    key = f"{key_prefix}:{{shapes}}"
    assert 3 == (await redis.execute("HELLO"))[5]  # the connection's protocol: RESP3
    await redis.execute("HSET", f"{key}:h", "a", "1")
    assert [b"a", b"1"] == await redis.execute("HGETALL", f"{key}:h")
    await redis.execute("ZADD", f"{key}:z", 1.5, "m", 0.1, "n", 2, "o")
    assert b"1.5" == await redis.execute("ZSCORE", f"{key}:z", "m")
    assert b"2" == await redis.execute("ZSCORE", f"{key}:z", "o")
    assert b"0.10000000000000001" == await redis.execute("ZSCORE", f"{key}:z", "n")
    expected = [b"n", b"0.10000000000000001", b"m", b"1.5"]
    assert expected == await redis.execute("ZRANGE", f"{key}:z", 0, 1, "WITHSCORES")
    assert [b"n", b"0.10000000000000001"] == await redis.execute("ZPOPMIN", f"{key}:z")
    assert [b"m", b"1.5"] == await redis.execute("ZPOPMIN", f"{key}:z", 1)
    await redis.execute("ZADD", f"{key}:z", 3, "p")
    popped = [f"{key}:z".encode(), [[b"o", b"2"]]]  # ZMPOP nests its pairs in RESP2 too
    assert popped == await redis.execute("ZMPOP", 1, f"{key}:z", "MIN")
    script = "return {true, false, 7}"
    assert [1, None, 7] == await redis.execute("EVAL", script, 0)
    assert 1 == await redis.execute("EVAL", "return true", 0)
    assert None is await redis.execute("EVAL", "return false", 0)
    await redis.execute("SADD", f"{key}:s", "x")
    assert [b"x"] == await redis.execute("SMEMBERS", f"{key}:s")
    assert b"inf" == await redis.execute("ZINCRBY", f"{key}:z", "+inf", "q")


async def _alone_on_idle_connections(redis: RedisClient, key_prefix: str) -> None:
    """Connect to every server, then send a lone command: the next caller is alone.

    Keys in every slot range reach each cluster node.
    """
    await asyncio.gather(*(redis.execute("GET", f"{key_prefix}:open:{n}") for n in range(50)))
    await redis.execute("PING")


async def test_one_tick_of_commands_is_one_pipeline(redis: RedisClient, key_prefix: str) -> None:
    """200 concurrent commands leave as one pipeline, and each gets its own reply.

    A PING goes first: on an idle connection it is written at once, and the
    connection it leaves busy takes the 200 together.
    """
    before = redis.statistics().pipeline
    ping, *replies = await asyncio.gather(
        redis.execute("PING"), *(redis.execute("INCR", f"{key_prefix}:{i % 7}") for i in range(200))
    )
    after = redis.statistics().pipeline
    assert (b"PONG", 201) == (ping, after.commands - before.commands)
    expected_batches = 1 if not redis.is_cluster else 3  # one pipeline per node
    assert 1 + expected_batches >= after.batches - before.batches
    assert sorted(replies) == sorted(
        count for i in range(7) for count in range(1, len(range(i, 200, 7)) + 1)
    )


async def test_a_command_on_an_idle_connection_is_written_at_once(
    redis: RedisClient, key_prefix: str
) -> None:
    """A lone caller's command is on the wire before the event loop runs anything else.

    Batching it to the tick's end cost a lone caller one more event-loop iteration
    per request, and gathered nothing. The first command of a busy tick after it
    goes at once too, the others of that tick share one write; once ticks are
    busy, a tick's commands all leave together.
    """
    key = f"{key_prefix}:idle"
    await _alone_on_idle_connections(redis, key_prefix)
    loop = asyncio.get_running_loop()
    before = redis.statistics().pipeline
    call = asyncio.ensure_future(redis.execute("INCR", key))
    seen: asyncio.Future[PipelineStatistics] = loop.create_future()
    # Runs right after `call` submitted, before any callback its submission scheduled.
    loop.call_soon(lambda: seen.set_result(redis.statistics().pipeline))
    written = await seen
    assert (1, 1, 1) == (
        written.commands - before.commands,
        written.batches - before.batches,
        written.waiting,  # written, not yet answered
    )
    assert 1 == await call
    before = redis.statistics().pipeline
    replies = await asyncio.gather(*(redis.execute("INCR", key) for _ in range(20)))
    after = redis.statistics().pipeline
    assert (list(range(2, 22)), 20, 2) == (
        sorted(replies),
        after.commands - before.commands,
        after.batches - before.batches,
    )
    before = after
    await asyncio.gather(*(redis.execute("INCR", key) for _ in range(20)))
    after = redis.statistics().pipeline
    assert (20, 1) == (after.commands - before.commands, after.batches - before.batches)


async def test_each_caller_gets_its_own_error(redis: RedisClient, key_prefix: str) -> None:
    """A failing command in a pipeline fails only its own caller."""
    text = f"{key_prefix}:text"
    await redis.execute("SET", text, "not a number")
    results = await asyncio.gather(
        redis.execute("INCR", f"{key_prefix}:ok"),
        redis.execute("INCR", text),
        redis.execute("NOSUCHCOMMAND"),
        redis.execute("GET", text),
        return_exceptions=True,
    )
    assert 1 == results[0]
    assert isinstance(results[1], BackendCommandError)
    assert "not an integer" in str(results[1])
    assert isinstance(results[2], BackendCommandError)
    assert b"not a number" == results[3]


async def test_several_commands_run_back_to_back_in_one_pipeline(
    redis: RedisClient, key_prefix: str
) -> None:
    """`execute_many`: one batch, replies in order; an error raises, the rest still run.

    On an idle connection too: the commands are written at once, together.
    """
    key = f"{key_prefix}:many"
    await _alone_on_idle_connections(redis, key_prefix)
    before = redis.statistics().pipeline
    replies = await redis.execute_many(("SET", key, "1", "PX", 60_000), ("INCR", key), ("GET", key))
    after = redis.statistics().pipeline
    assert ([b"OK", 2, b"2"], 3, 1) == (
        replies,
        after.commands - before.commands,
        after.batches - before.batches,
    )
    with pytest.raises(BackendCommandError, match="not an integer"):
        await redis.execute_many(("SET", key, "text", "PX", 60_000), ("INCR", key), ("DEL", key))
    assert 0 == await redis.execute("EXISTS", key)


async def test_cancelled_callers_do_not_disturb_the_others(
    redis: RedisClient, key_prefix: str
) -> None:
    """Cancelling some callers mid-flight leaves every other reply correct."""
    key = f"{key_prefix}:n"
    tasks = [asyncio.create_task(redis.execute("INCR", key)) for _ in range(100)]
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    replies = [r for r in results if not isinstance(r, BaseException)]
    assert 50 == len(replies)
    assert len(set(replies)) == len(replies)
    assert await redis.execute("GET", key) in {str(n).encode() for n in range(50, 101)}


async def test_cluster_routes_keys_to_their_nodes(cluster_url: str, key_prefix: str) -> None:
    """Keys spread over every node are read back from the right one."""
    space = KeySpace(key_prefix)
    async with RedisClient.from_url(cluster_url) as cluster:
        keys = [space.key(str(i)) for i in range(60)]
        await asyncio.gather(*(cluster.execute("SET", key, key) for key in keys))
        assert [key.encode() for key in keys] == await asyncio.gather(
            *(cluster.execute("GET", key) for key in keys)
        )
        assert 3 == len({key_slot(key.encode()) // 5462 for key in keys})
        assert b"PONG" == await cluster.execute("PING")


async def test_cluster_follows_a_moved_slot(cluster_url: str, key_prefix: str) -> None:
    """When a slot changes owner, commands follow the MOVED reply and the map refreshes."""
    async with RedisClient.from_url(cluster_url) as cluster:
        async with empty_slot(cluster, key_prefix) as slot:
            key = slot.key
            await slot.move()
            assert b"OK" == await cluster.execute("SET", key, "moved")
            assert b"moved" == await cluster.execute("GET", key)
            assert 1 == await cluster.execute("DEL", key)
        assert None is await cluster.execute("GET", key)


async def test_cluster_follows_ask_during_a_slot_migration(
    cluster_url: str, key_prefix: str
) -> None:
    """While a slot migrates, keys absent from the source are served by the target via ASK."""
    key = f"{key_prefix}:{{asking}}"
    slot = key_slot(key.encode())
    async with RedisClient.from_url(cluster_url) as cluster:
        ranges = await cluster.execute("CLUSTER", "SLOTS")
        nodes = [(host.decode(), port, node_id) for _, _, (host, port, node_id, *_) in ranges]
        owner = next(
            node
            for (start, end, *_), node in zip(ranges, nodes, strict=True)
            if start <= slot <= end
        )
        target = next(node for node in nodes if node != owner)
        source = RedisClient.from_url(f"redis://{owner[0]}:{owner[1]}")
        destination = RedisClient.from_url(f"redis://{target[0]}:{target[1]}")
        try:
            await destination.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", owner[2])
            await source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target[2])
            assert b"OK" == await cluster.execute("SET", key, "asked")
            assert b"asked" == await cluster.execute("GET", key)
            assert 1 == await cluster.execute("DEL", key)
        finally:
            for admin in (source, destination):
                await admin.execute("CLUSTER", "SETSLOT", slot, "STABLE")
                await admin.aclose()
        assert None is await cluster.execute("GET", key)


def test_memory_urls_are_refused() -> None:
    """A RedisClient needs a Redis URL."""
    with pytest.raises(ConfigurationError, match="needs a Redis URL"):
        RedisClient.from_url("memory://")
    assert isinstance(parse_backend_url("memory://"), MemoryConfig)


async def test_closed_client_refuses_commands_after_finishing_sent_ones(redis_url: str) -> None:
    """Aclose waits for replies already on the way, then refuses new commands."""
    client = RedisClient.from_url(redis_url)
    pending = [asyncio.ensure_future(client.execute("PING")) for _ in range(10)]
    await asyncio.sleep(0)  # the commands are submitted, not yet answered
    await client.aclose()
    assert [b"PONG"] * 10 == await asyncio.gather(*pending)
    with pytest.raises(BackendUnavailable, match="closed"):
        await client.execute("PING")


async def test_pipeline_sizes_are_reported_to_instrumentation(redis_url: str) -> None:
    """Each pipeline's size is recorded on the scalepy.redis.pipeline.size histogram."""
    recording = RecordingInstrumentation()
    async with RedisClient.from_url(redis_url, instrumentation=recording) as client:
        await asyncio.gather(*(client.execute("PING") for _ in range(25)))
        await client.execute("PING")
    assert 2 == recording.count(PIPELINE_SIZE.name)
    assert 26 == recording.value(PIPELINE_SIZE.name)


async def test_repr_and_statistics_show_live_state(redis_url: str) -> None:
    """Repr names the server and counts commands; the password never shows."""
    async with RedisClient.from_url(redis_url) as client:
        await client.execute("PING")
        assert (
            f"<RedisClient {parse_backend_url(redis_url)} commands=1 batches=1 waiting=0>"
            == repr(client)
        )
        stats = client.statistics()
        assert (1, 1, 0) == (
            stats.pipeline.commands,
            stats.pipeline.batches,
            stats.pipeline.waiting,
        )
        assert not client.is_cluster
        assert client.config == parse_backend_url(redis_url)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "redis://app:s3cret@127.0.0.1:6379/0",
            "for a URL write RedisClient.from_url('redis://app:***@127.0.0.1:6379/0')",
        ),
        (MemoryConfig(), "takes a RedisConfig or RedisClusterConfig (see parse_backend_url)"),
    ],
)
def test_the_constructor_refuses_what_is_not_a_redis_configuration(
    config: object, expected: str
) -> None:
    """`RedisClient("redis://…")` names `from_url` (was AttributeError); the password is masked."""
    with pytest.raises(ConfigurationError) as raised:
        RedisClient(config)  # type: ignore[arg-type]  # the misuse under test
    assert expected in str(raised.value)
    assert "s3cret" not in str(raised.value)
