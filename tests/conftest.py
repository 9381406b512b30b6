"""Fixtures shared by the whole suite: real Redis, Redis Cluster and PostgreSQL.

The servers are the ones `scripts/services.sh start` runs; their addresses can be
overridden with SCALEPY_TEST_REDIS_URL, SCALEPY_TEST_CLUSTER_URL and
SCALEPY_TEST_POSTGRES_DSN.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import pytest

from scalepy.backends.redis import RedisClient
from tests.support.redis_server import RedisClusterNode, RedisServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared test Redis server."""
    return os.environ.get("SCALEPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def cluster_url() -> str:
    """URL of the local 3-master Redis Cluster."""
    return os.environ.get("SCALEPY_TEST_CLUSTER_URL", "redis+cluster://127.0.0.1:7000")


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of the test PostgreSQL database."""
    return os.environ.get("SCALEPY_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_database(postgres_dsn: str) -> str:
    """Name of the test PostgreSQL database (each session may use its own)."""
    return postgres_dsn.rpartition("/")[2].partition("?")[0]


@pytest.fixture
async def key_prefix(redis_url: str, cluster_url: str) -> AsyncIterator[str]:
    """A key prefix no other test uses, so tests never see each other's keys.

    Afterwards every key holding it (hash-tagged or not) is deleted from the shared
    server and every cluster node, so the servers do not fill up run after run.
    """
    token = uuid.uuid4().hex
    yield f"scalepy-test:{token}"
    for url in (redis_url, cluster_url):
        async with RedisClient.from_url(url) as client:
            keys = [key async for key in client.redis.scan_iter(match=f"*{token}*", count=1000)]
            for key in keys:  # one at a time: on a cluster they may live in any slot
                await client.redis.delete(key)


@pytest.fixture(params=["standalone", "cluster"])
async def redis(
    request: pytest.FixtureRequest, redis_url: str, cluster_url: str
) -> AsyncIterator[RedisClient]:
    """A RedisClient on the shared server, then on the cluster (every test runs on both)."""
    url = redis_url if request.param == "standalone" else cluster_url
    async with RedisClient.from_url(url) as client:
        yield client


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server the test may stop, pause and restart."""
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture(params=["standalone", "cluster"])
def outage_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, then a private one-node cluster, the test may stop and restart."""
    server = RedisServer(tmp_path) if request.param == "standalone" else RedisClusterNode(tmp_path)
    with server:
        yield server
