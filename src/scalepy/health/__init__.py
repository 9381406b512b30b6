"""Kubernetes-grade health endpoints: liveness, readiness, startup, details, drain, metrics.

```python
from scalepy.health import Health, postgres_check, redis_check

health = Health(checks=[redis_check(redis), postgres_check(pool)])
app = Starlette(routes=health.routes(), lifespan=health.lifespan(resources=[pool, redis]))
```

Bodies follow the IETF health+json draft (`application/health+json`). Importing
this package needs only the standard library; `Health.routes()` needs the
`starlette` extra, and `/metrics` an instrumentation that renders metrics, such as
`scalepy.integrations.prometheus.PrometheusInstrumentation` (the `prometheus` extra).
"""

from scalepy.backends._masking import redact as redact
from scalepy.health._asgi import Endpoint as Endpoint
from scalepy.health._asgi import HealthApp as HealthApp
from scalepy.health._check import Check as Check
from scalepy.health._check import Observation as Observation
from scalepy.health._check import ProbeResult as ProbeResult
from scalepy.health._check import Status as Status
from scalepy.health._checks import AcquiringPool as AcquiringPool
from scalepy.health._checks import QueryConnection as QueryConnection
from scalepy.health._checks import event_loop_check as event_loop_check
from scalepy.health._checks import postgres_check as postgres_check
from scalepy.health._checks import redis_check as redis_check
from scalepy.health._health import Health as Health
from scalepy.health._metrics import CHECK_DURATION as CHECK_DURATION
from scalepy.health._metrics import CHECK_STATUS as CHECK_STATUS
from scalepy.health._metrics import LOOP_LAG as LOOP_LAG
from scalepy.health._monitor import LoopLagMonitor as LoopLagMonitor
from scalepy.health._report import CheckResult as CheckResult
from scalepy.health._report import HealthReport as HealthReport

__all__ = (
    "CHECK_DURATION",
    "CHECK_STATUS",
    "LOOP_LAG",
    "AcquiringPool",
    "Check",
    "CheckResult",
    "Endpoint",
    "Health",
    "HealthApp",
    "HealthReport",
    "LoopLagMonitor",
    "Observation",
    "ProbeResult",
    "QueryConnection",
    "Status",
    "event_loop_check",
    "postgres_check",
    "redact",
    "redis_check",
)
