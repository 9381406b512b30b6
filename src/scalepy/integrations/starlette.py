"""Starlette conveniences: the health endpoints as routes.

```python
from starlette.applications import Starlette
from scalepy.health import Health

health = Health(checks=[...])
app = Starlette(routes=[*health.routes(), ...], lifespan=health.lifespan())
```

`Health.routes()` calls `health_routes()`; `Health.lifespan()` and `health.asgi`
need no Starlette at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy._extras import missing_extra
from scalepy._validation import check_object

try:
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - exercised by the no-extras check
    raise missing_extra(__name__, "starlette") from exc

if TYPE_CHECKING:
    from scalepy.health import Health

__all__ = ("health_routes",)


def health_routes(health: Health) -> list[Route]:
    """One Starlette route per health endpoint, all served by `health.asgi`.

    The routes are left out of OpenAPI schemas; Starlette answers 405 itself for a
    method an endpoint does not accept.

    Args:
        health: What to serve.

    Raises:
        ConfigurationError: `health` is not a `Health`.

    Returns:
        Routes named `health`, `health_live`, `health_ready`, `health_startup`,
        `health_drain` and `metrics` (when metrics are served).
    """
    check_object(
        "health_routes() takes", health, "routes", "a Health", "health_routes(Health(...))"
    )
    app = health.asgi
    return [
        Route(
            endpoint.path,
            app,
            methods=sorted(endpoint.methods),
            name=endpoint.name,
            include_in_schema=False,
        )
        for endpoint in app.endpoints
    ]
