"""Connection pools: PostgreSQL (a primary and read replicas, on asyncpg) and Redis clients.

```python
from scalepy.pools import PoolManager

pools = PoolManager(postgres="postgresql://app@db/app", redis="redis://cache:6379/0")
async with pools:
    async with pools.postgres.acquire(read_only=True) as connection:
        ...
```

Needs the `postgres` extra (asyncpg, and tenacity for the start-up retries), and
the `redis` extra for Redis URLs.
"""

from scalepy._extras import missing_extra

try:
    import asyncpg  # noqa: F401 - fail here, with an install hint, not deep inside
    import tenacity  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the missing-extra test
    raise missing_extra(__name__, "postgres") from exc

from scalepy.errors import PoolClosedError as PoolClosedError
from scalepy.errors import PoolError as PoolError
from scalepy.errors import PoolNotOpenError as PoolNotOpenError
from scalepy.errors import PoolTimeoutError as PoolTimeoutError
from scalepy.pools._cluster import PostgresCluster as PostgresCluster
from scalepy.pools._config import PoolOptions as PoolOptions
from scalepy.pools._config import PostgresConfig as PostgresConfig
from scalepy.pools._config import mask_dsn as mask_dsn
from scalepy.pools._connection import Connection as Connection
from scalepy.pools._manager import PoolManager as PoolManager
from scalepy.pools._manager import RedisTarget as RedisTarget
from scalepy.pools._metrics import CONNECTION_COUNT as CONNECTION_COUNT
from scalepy.pools._metrics import CONNECTION_IDLE_MIN as CONNECTION_IDLE_MIN
from scalepy.pools._metrics import CONNECTION_MAX as CONNECTION_MAX
from scalepy.pools._metrics import CREATE_TIME as CREATE_TIME
from scalepy.pools._metrics import LEAKS as LEAKS
from scalepy.pools._metrics import PENDING_REQUESTS as PENDING_REQUESTS
from scalepy.pools._metrics import READ_FALLBACKS as READ_FALLBACKS
from scalepy.pools._metrics import RECYCLED as RECYCLED
from scalepy.pools._metrics import TIMEOUTS as TIMEOUTS
from scalepy.pools._metrics import USE_TIME as USE_TIME
from scalepy.pools._metrics import WAIT_TIME as WAIT_TIME
from scalepy.pools._pool import PostgresPool as PostgresPool
from scalepy.pools._statistics import ClusterStatistics as ClusterStatistics
from scalepy.pools._statistics import PoolManagerStatistics as PoolManagerStatistics
from scalepy.pools._statistics import PoolStatistics as PoolStatistics

__all__ = (
    "CONNECTION_COUNT",
    "CONNECTION_IDLE_MIN",
    "CONNECTION_MAX",
    "CREATE_TIME",
    "LEAKS",
    "PENDING_REQUESTS",
    "READ_FALLBACKS",
    "RECYCLED",
    "TIMEOUTS",
    "USE_TIME",
    "WAIT_TIME",
    "ClusterStatistics",
    "Connection",
    "PoolClosedError",
    "PoolError",
    "PoolManager",
    "PoolManagerStatistics",
    "PoolNotOpenError",
    "PoolOptions",
    "PoolStatistics",
    "PoolTimeoutError",
    "PostgresCluster",
    "PostgresConfig",
    "PostgresPool",
    "RedisTarget",
    "mask_dsn",
)
