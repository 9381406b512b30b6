"""Load shedding: an adaptive concurrency limit that keeps latency bounded under overload.

```python
from scalepy.shedding import LoadShedder, Priority

shedder = LoadShedder("api")  # Gradient() limit, a short line, LIFO + CoDel under overload


@shedder
async def render(page: str) -> bytes: ...


async with shedder.slot(Priority.HIGH):
    ...
```

The limit algorithms (`Gradient`, `AIMD`) are pure cores fed one sample per
window; the wait line (`scalepy.shedding._line`) is pure too; `LoadShedder` is
the thin async shell and `LoadShedMiddleware` the ASGI face. Importing this
package needs only the standard library.
"""

from scalepy.errors import RequestShed as RequestShed
from scalepy.shedding._aimd import AIMD as AIMD
from scalepy.shedding._gradient import Gradient as Gradient
from scalepy.shedding._limit import LimitBounds as LimitBounds
from scalepy.shedding._limit import LimitCore as LimitCore
from scalepy.shedding._limit import LimitPolicy as LimitPolicy
from scalepy.shedding._limit import Sample as Sample
from scalepy.shedding._priority import Priority as Priority
from scalepy.shedding._shedder import LoadShedder as LoadShedder
from scalepy.shedding._shedder import Permit as Permit
from scalepy.shedding._shedder import ShedderStatistics as ShedderStatistics
from scalepy.shedding.asgi import Classifier as Classifier
from scalepy.shedding.asgi import LoadShedMiddleware as LoadShedMiddleware

__all__ = (
    "AIMD",
    "Classifier",
    "Gradient",
    "LimitBounds",
    "LimitCore",
    "LimitPolicy",
    "LoadShedMiddleware",
    "LoadShedder",
    "Permit",
    "Priority",
    "RequestShed",
    "Sample",
    "ShedderStatistics",
)
