"""Circuit breaking with resilience4j semantics: stop calling a failing dependency.

```python
from scalepy.breaker import CircuitBreaker, CircuitOpenError

breaker = CircuitBreaker("postgres", failure_rate_threshold=0.5, open_for=10)

@breaker
async def fetch_user(user_id: int) -> User: ...

async with breaker:
    await conn.execute("SELECT 1")
```

The state machine (`scalepy.breaker._state`) is pure and driven by the time
passed in; `CircuitBreaker` is the thin async shell around it. Importing this
package needs only the standard library.
"""

from scalepy.breaker._breaker import CircuitBreaker as CircuitBreaker
from scalepy.breaker._events import BreakerStatistics as BreakerStatistics
from scalepy.breaker._events import StateChange as StateChange
from scalepy.breaker._registry import BreakerOptions as BreakerOptions
from scalepy.breaker._registry import BreakerRegistry as BreakerRegistry
from scalepy.breaker._shared import RedisSharedState as RedisSharedState
from scalepy.breaker._shared import SharedState as SharedState
from scalepy.breaker._shared import SharedStateStatistics as SharedStateStatistics
from scalepy.breaker._state import BreakerConfig as BreakerConfig
from scalepy.breaker._state import BreakerState as BreakerState
from scalepy.errors import CircuitOpenError as CircuitOpenError

__all__ = (
    "BreakerConfig",
    "BreakerOptions",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStatistics",
    "CircuitBreaker",
    "CircuitOpenError",
    "RedisSharedState",
    "SharedState",
    "SharedStateStatistics",
    "StateChange",
)
