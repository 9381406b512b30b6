"""scalepy's Redis connection layer: automatic pipelining, bounded timeouts, Lua scripts.

Needs the `redis` extra (`pip install 'scalepy-toolkit[redis]'`). Every primitive's Redis
store runs on one `RedisClient`, which works the same on a single server and on a
Redis Cluster.
"""

from scalepy._extras import missing_extra

try:
    import redis.asyncio  # noqa: F401 - fail here, with an install hint, not deep inside
except ImportError as exc:  # pragma: no cover - exercised by the no-extras check
    raise missing_extra(__name__, "redis") from exc

from scalepy.backends.redis._client import RedisClient as RedisClient
from scalepy.backends.redis._client import RedisClientStatistics as RedisClientStatistics
from scalepy.backends.redis._pipeline import PipelineStatistics as PipelineStatistics
from scalepy.backends.redis._scripts import Script as Script
from scalepy.backends.redis._scripts import ScriptRegistry as ScriptRegistry
from scalepy.backends.redis._subscription import Subscription as Subscription
from scalepy.backends.redis._subscription import (
    SubscriptionStatistics as SubscriptionStatistics,
)

__all__ = (
    "PipelineStatistics",
    "RedisClient",
    "RedisClientStatistics",
    "Script",
    "ScriptRegistry",
    "Subscription",
    "SubscriptionStatistics",
)
