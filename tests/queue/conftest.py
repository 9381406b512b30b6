"""Fixtures of the queue tests: a fresh queue on the shared Redis, then on the cluster.

Tests marked `@ALL_BACKENDS` also run on a `memory://` queue.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from scalepy.queue import Queue, RedisQueueStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

WAIT = 10.0  # the most any awaited condition below may take; they usually take milliseconds

_DELETE = """
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', key) end
return 0
"""


ALL_BACKENDS = pytest.mark.parametrize(
    "queue_url", ["standalone", "cluster", "memory"], indirect=True
)
"""Runs a test on `memory://` too: `queue_url` is then `"memory://"`."""


@pytest.fixture(params=["standalone", "cluster"])
def queue_url(request: pytest.FixtureRequest, redis_url: str, cluster_url: str) -> str:
    """The shared Redis server's URL, then the cluster's (every test runs on both)."""
    urls = {"standalone": redis_url, "cluster": cluster_url, "memory": "memory://"}
    return urls[request.param]


@pytest.fixture
async def queue_name(queue_url: str) -> AsyncIterator[str]:
    """A queue name no other test uses; whatever the test left under it is deleted.

    The one clean-up for every queue of the test by that name (its workers' too).
    """
    name = f"test-{uuid.uuid4().hex}"
    yield name
    if queue_url != "memory://":  # a memory queue's jobs go with the object
        async with Queue(queue_url, name=name) as queue:
            await delete_store_keys(redis_store(queue))


@pytest.fixture
async def queue(queue_url: str, queue_name: str) -> AsyncIterator[Queue]:
    """A queue of its own (`queue_name` deletes its keys afterwards)."""
    async with Queue(queue_url, name=queue_name) as fresh:
        yield fresh


async def delete_store_keys(store: RedisQueueStore) -> None:
    """Delete every key of the store's queue (all in one cluster slot: one script finds them)."""
    await store.client.execute("EVAL", _DELETE, 1, store.base, store.base + "*")


def redis_store(queue: Queue) -> RedisQueueStore:
    """The store of a Redis queue, whose keys tests may read."""
    store = queue.store
    assert isinstance(store, RedisQueueStore)
    return store
