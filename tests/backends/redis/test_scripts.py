"""Lua scripts: loaded from package files, run by SHA1, resent after NOSCRIPT."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from scalepy.backends import KeySpace
from scalepy.backends.redis import RedisClient, Script, ScriptRegistry
from scalepy.errors import BackendCommandError, ConfigurationError
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from pathlib import Path

SCRIPTS = ScriptRegistry("tests.backends.redis.lua_scripts")


def test_registry_loads_every_lua_file_of_the_package() -> None:
    """Only .lua files are scripts; each gets the SHA1 Redis computes."""
    assert ["fail", "incr_pair"] == list(SCRIPTS)
    assert 2 == len(SCRIPTS)
    assert "incr_pair" in SCRIPTS
    assert "README" not in SCRIPTS
    script = SCRIPTS["incr_pair"]
    assert "incr_pair" == script.name
    assert Script("x", script.source).sha == script.sha
    assert "source" not in repr(script)
    assert "incr_pair" in repr(SCRIPTS)


def test_registry_errors_name_what_exists() -> None:
    """Unknown scripts and empty or missing folders are reported clearly."""
    with pytest.raises(KeyError, match="known: fail, incr_pair"):
        SCRIPTS["missing"]
    with pytest.raises(ConfigurationError, match="no script directory"):
        ScriptRegistry("tests.backends.redis.lua_scripts", "nowhere")
    with pytest.raises(ConfigurationError, match=r"no \.lua file"):
        ScriptRegistry("tests", "support")


async def test_scripts_run_by_sha_and_survive_script_flush(
    outage_server: RedisServer, key_prefix: str
) -> None:
    """After SCRIPT FLUSH on every node, the next call resends the body and works.

    The flush runs on a server of the test's own: on the shared one it would take the
    scripts of every other client using it.
    """
    keys = KeySpace(key_prefix).keys("counter", "a", "b")
    async with RedisClient.from_url(outage_server.url) as redis:
        assert [2, 2] == await redis.run_script(SCRIPTS["incr_pair"], keys, [2])
        reloads = redis.statistics().script_reloads  # 1: this server had never seen it
        await redis.redis.script_flush()
        assert [5, 5] == await redis.run_script(SCRIPTS["incr_pair"], keys, [3])
        assert reloads + 1 == redis.statistics().script_reloads
        assert [6, 6] == await redis.run_script(SCRIPTS["incr_pair"], keys, [1])
        assert reloads + 1 == redis.statistics().script_reloads


async def test_concurrent_calls_after_a_flush_all_succeed(
    outage_server: RedisServer, key_prefix: str
) -> None:
    """Many callers hitting NOSCRIPT in one pipeline each recover (on a server of its own)."""
    keys = KeySpace(key_prefix).keys("counter", "a", "b")
    async with RedisClient.from_url(outage_server.url) as redis:
        await redis.run_script(SCRIPTS["incr_pair"], keys, [0])
        await redis.redis.script_flush()
        replies = await asyncio.gather(
            *(redis.run_script(SCRIPTS["incr_pair"], keys, [1]) for _ in range(20))
        )
        assert list(range(1, 21)) == sorted(reply[0] for reply in replies)
        assert [20, 20] == await redis.run_script(SCRIPTS["incr_pair"], keys, [0])


async def test_script_errors_are_command_errors(redis: RedisClient) -> None:
    """A script's error reply reaches its caller as BackendCommandError."""
    with pytest.raises(BackendCommandError, match="scalepy test failure"):
        await redis.run_script(SCRIPTS["fail"])


async def test_multi_key_script_runs_on_the_cluster(cluster_url: str, key_prefix: str) -> None:
    """Keys built with one hash tag run together on the cluster; others are refused early."""
    async with RedisClient.from_url(cluster_url) as cluster:
        space = KeySpace(key_prefix)
        for identity in ("alpha", "beta", "gamma", "delta"):  # spread over the nodes
            keys = space.keys(identity, "a", "b")
            assert [7, 7] == await cluster.run_script(SCRIPTS["incr_pair"], keys, [7])
        split = [space.key("alpha", "a"), space.key("beta", "a")]
        with pytest.raises(ConfigurationError, match="same hash tag"):
            await cluster.run_script(SCRIPTS["incr_pair"], split, [1])


async def test_a_submitted_script_takes_its_arguments_when_the_tick_is_written(
    redis: RedisClient, key_prefix: str
) -> None:
    """`submit_script` asks for its arguments at the flush: what the tick added counts."""
    keys = KeySpace(key_prefix).keys("counter", "a", "b")
    added: list[int] = []
    reply = asyncio.get_running_loop().create_future()
    redis.submit_script(SCRIPTS["incr_pair"], keys, lambda: [sum(added)], reply.set_result)
    added += [2, 3]  # after submitting, in the same tick
    assert [5, 5] == (await reply).result()


async def test_a_submitted_script_withdrawn_is_not_sent(
    redis: RedisClient, key_prefix: str
) -> None:
    """Arguments of `None` withdraw the call: its future is cancelled, nothing is written."""
    keys = KeySpace(key_prefix).keys("counter", "a", "b")
    sent = redis.statistics().pipeline.commands
    reply = asyncio.get_running_loop().create_future()
    redis.submit_script(SCRIPTS["incr_pair"], keys, lambda: None, reply.set_result)
    assert (await reply).cancelled()
    assert sent == redis.statistics().pipeline.commands


async def test_a_submitted_script_survives_script_flush(tmp_path: Path, key_prefix: str) -> None:
    """After SCRIPT FLUSH, `submit_script` resends the body (on a server of the test's own)."""
    keys = KeySpace(key_prefix).keys("counter", "a", "b")
    with RedisServer(tmp_path, port=22002) as server:
        async with RedisClient.from_url(server.url) as redis:
            assert [1, 1] == await redis.run_script(SCRIPTS["incr_pair"], keys, [1])
            reloads = redis.statistics().script_reloads
            await redis.redis.script_flush()
            reply = asyncio.get_running_loop().create_future()
            redis.submit_script(SCRIPTS["incr_pair"], keys, lambda: [2], reply.set_result)
            assert [3, 3] == (await reply).result()
            assert reloads + 1 == redis.statistics().script_reloads
