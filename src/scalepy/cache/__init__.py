"""Read-through caching, in one process or shared by every replica through Redis.

```python
from scalepy.cache import Cache

cache = Cache("redis://localhost:6379/0", namespace="todo", local_max_size=10_000)


@cache.cached(ttl=60, tags=["todo:{todo_id}"])
async def get_todo(todo_id: int) -> dict[str, object]: ...


await get_todo.invalidate(42)  # one entry, in every process
await cache.invalidate_tags("todo:42")  # every entry carrying the tag
```

Importing this package needs only the standard library; a Redis URL needs the
`redis` extra.
"""

from typing import TYPE_CHECKING

from scalepy._lazy import lazy_exports
from scalepy.cache._cache import Cache as Cache
from scalepy.cache._decorator import CachedFunction as CachedFunction
from scalepy.cache._decorator import CachedManyFunction as CachedManyFunction
from scalepy.cache._memory import MemoryCacheStore as MemoryCacheStore
from scalepy.cache._store import CacheStore as CacheStore
from scalepy.cache._store import InvalidationChannel as InvalidationChannel
from scalepy.cache._store import LockingCacheStore as LockingCacheStore
from scalepy.cache._store import LockOnMissCacheStore as LockOnMissCacheStore
from scalepy.cache._store import PubSubCacheStore as PubSubCacheStore
from scalepy.cache._store import ReleaseOnSetCacheStore as ReleaseOnSetCacheStore
from scalepy.cache._store import SharedCacheStore as SharedCacheStore
from scalepy.cache._telemetry import CacheStatistics as CacheStatistics

__all__ = (
    "Cache",
    "CacheStatistics",
    "CacheStore",
    "CachedFunction",
    "CachedManyFunction",
    "InvalidationChannel",
    "LockOnMissCacheStore",
    "LockingCacheStore",
    "MemoryCacheStore",
    "PubSubCacheStore",
    "RedisCacheStore",
    "ReleaseOnSetCacheStore",
    "SharedCacheStore",
)

if TYPE_CHECKING:
    from scalepy.cache._redis import RedisCacheStore as RedisCacheStore

# Needing the redis extra: imported on first use, so this package stays stdlib-only.
__getattr__ = lazy_exports(
    __name__,
    {
        "RedisCacheStore": "scalepy.cache._redis",
    },
    requires="scalepy.backends.redis",
)
