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

try:
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - exercised by the no-extras check
    raise ImportError(
        "scalepy.integrations.starlette needs the 'starlette' extra: "
        "pip install 'scalepy[starlette]'"
    ) from exc

if TYPE_CHECKING:
    from scalepy.health import Health

__all__ = ("health_routes",)


def health_routes(health: Health) -> list[Route]:
    """One Starlette route per health endpoint, all served by `health.asgi`.

    The routes are left out of OpenAPI schemas; Starlette answers 405 itself for a
    method an endpoint does not accept.

    Args:
        health: What to serve.

    Returns:
        Routes named `health`, `health_live`, `health_ready`, `health_startup`,
        `health_drain` and `metrics` (when metrics are served).
    """
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
