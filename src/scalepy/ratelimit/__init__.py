"""Rate limits shared by every replica: token bucket / GCRA, sliding and fixed windows, middleware.

```python
from scalepy.ratelimit import RateLimiter, TokenBucket

limiter = RateLimiter("redis://localhost:6379/0")
decision = await limiter.acquire("client:1.2.3.4", TokenBucket(capacity=20, refill_rate=10.0))
```

Importing this package needs only the standard library; a Redis URL needs the
`redis` extra.
"""

from typing import TYPE_CHECKING

from scalepy._lazy import lazy_exports
from scalepy.errors import CostExceedsBurst as CostExceedsBurst
from scalepy.errors import RateLimitExceeded as RateLimitExceeded
from scalepy.ratelimit._decision import Decision as Decision
from scalepy.ratelimit._decision import Outcome as Outcome
from scalepy.ratelimit._decision import PolicyDecision as PolicyDecision
from scalepy.ratelimit._keys import EXEMPT as EXEMPT
from scalepy.ratelimit._keys import UNIDENTIFIED as UNIDENTIFIED
from scalepy.ratelimit._keys import UNIX as UNIX
from scalepy.ratelimit._keys import Exempt as Exempt
from scalepy.ratelimit._keys import KeyFunc as KeyFunc
from scalepy.ratelimit._keys import client_ip as client_ip
from scalepy.ratelimit._keys import header_key as header_key
from scalepy.ratelimit._keys import user_key as user_key
from scalepy.ratelimit._lease import Lease as Lease
from scalepy.ratelimit._limiter import FailurePolicy as FailurePolicy
from scalepy.ratelimit._limiter import RateLimiter as RateLimiter
from scalepy.ratelimit._memory import MemoryRateLimitStore as MemoryRateLimitStore
from scalepy.ratelimit._policies import GCRA as GCRA
from scalepy.ratelimit._policies import FixedWindow as FixedWindow
from scalepy.ratelimit._policies import Policy as Policy
from scalepy.ratelimit._policies import SlidingWindow as SlidingWindow
from scalepy.ratelimit._policies import TokenBucket as TokenBucket
from scalepy.ratelimit._store import RateLimitStore as RateLimitStore
from scalepy.ratelimit.asgi import RateLimitMiddleware as RateLimitMiddleware

__all__ = (
    "EXEMPT",
    "GCRA",
    "UNIDENTIFIED",
    "UNIX",
    "CostExceedsBurst",
    "Decision",
    "Exempt",
    "FailurePolicy",
    "FixedWindow",
    "KeyFunc",
    "Lease",
    "MemoryRateLimitStore",
    "Outcome",
    "Policy",
    "PolicyDecision",
    "RateLimitExceeded",
    "RateLimitMiddleware",
    "RateLimitStore",
    "RateLimiter",
    "RedisRateLimitStore",
    "SlidingWindow",
    "TokenBucket",
    "client_ip",
    "header_key",
    "user_key",
)

if TYPE_CHECKING:
    from scalepy.ratelimit._redis import RedisRateLimitStore as RedisRateLimitStore

# Needing the redis extra: imported on first use, so this package stays stdlib-only.
__getattr__ = lazy_exports(
    __name__,
    {
        "RedisRateLimitStore": "scalepy.ratelimit._redis",
    },
    requires="scalepy.backends.redis",
)
