"""`LoadShedMiddleware`: adaptive load shedding for any ASGI application, framework-free.

```python
from scalepy.shedding import LoadShedder, Priority
from scalepy.shedding.asgi import LoadShedMiddleware


def classify(scope: Scope) -> Priority:
    return Priority.LOW if scope["path"].startswith("/reports") else Priority.NORMAL


app = LoadShedMiddleware(app, shedder=LoadShedder("api"), classify=classify)
```

Each HTTP request holds one of the shedder's slots while the application answers
it; over the limit it waits briefly in line, and a shed request is answered `503`
with `Retry-After` and an RFC 9457 `application/problem+json` body, without
reaching the application. Paths under `never_shed` (`/health` and `/metrics` by
default) and requests the classifier calls `CRITICAL` bypass the limit. WebSocket
and lifespan scopes pass through untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from scalepy._asgi import Scope, problem_body, send_problem
from scalepy.errors import ConfigurationError, RequestShed
from scalepy.shedding._priority import Priority

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scalepy._asgi import ASGIApp, Receive, Send
    from scalepy.shedding._shedder import LoadShedder

__all__ = ("Classifier", "LoadShedMiddleware")

Classifier: TypeAlias = Callable[[Scope], Priority]
"""Maps a request's ASGI scope (route, method, headers, tenant) to its priority class."""

_NEVER_SHED = ("/health", "/metrics")
_NORMAL = Priority.NORMAL  # enum member lookups are slow on the class: once, here
_CRITICAL = Priority.CRITICAL


class LoadShedMiddleware:
    """Hold a load-shedder slot per HTTP request; answer `503` when shed.

    Args:
        app: The ASGI application to protect.
        shedder: The limit requests share, e.g. `LoadShedder("api")`.
        classify: The priority class of a request; every request is `NORMAL` if
            `None`. Read only the scope (path, method, headers): it runs on every
            request, before the body.
        never_shed: Path prefixes that bypass the limit: never queued, never shed,
            not counted. Prefixes match whole segments (`/health` matches
            `/health/ready`, not `/healthz`).

    Raises:
        ConfigurationError: A prefix that does not start with `/`, or `never_shed`
            given as one string.
    """

    __slots__ = ("_app", "_classify", "_never", "_never_below", "_shedder")

    def __init__(
        self,
        app: ASGIApp,
        *,
        shedder: LoadShedder,
        classify: Classifier | None = None,
        never_shed: Iterable[str] = _NEVER_SHED,
    ) -> None:
        if isinstance(never_shed, str):
            raise ConfigurationError(f"never_shed must be a list of paths: write [{never_shed!r}]")
        prefixes = []
        for given in never_shed:
            prefix: object = given  # checked as given, whatever the annotation says
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ConfigurationError(
                    f"never_shed path prefixes must start with '/', got {prefix!r}"
                )
            prefixes.append(prefix.rstrip("/"))
        self._app = app
        self._shedder = shedder
        self._classify = classify
        # A path is exempt if it is a prefix, or starts with one and a slash: two C calls.
        self._never = frozenset(prefixes)
        self._never_below = tuple(prefix + "/" for prefix in prefixes)

    def _priority(self, scope: Scope) -> Priority:
        path: str = scope["path"]
        if path in self._never or path.startswith(self._never_below):
            return _CRITICAL
        return _NORMAL if self._classify is None else self._classify(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run an HTTP request inside a slot, or answer 503 if it is shed."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        priority = self._priority(scope)
        if priority is _CRITICAL:
            await self._app(scope, receive, send)
            return
        # `Permit`'s body inlined (its shedder's private steps): this runs on every request.
        shedder = self._shedder
        if shedder._admit():
            started = shedder._now()
        else:
            try:
                started = await shedder._wait(priority)
            except RequestShed as exc:
                await _shed(exc, send)
                return
        try:
            await self._app(scope, receive, send)
        except BaseException as exc:
            shedder._leave(started, exc)
            raise
        shedder._exit(started, dropped=False)


async def _shed(exc: RequestShed, send: Send) -> None:
    """Answer 503 with `Retry-After` (whole seconds, at least 1) and a problem body."""
    retry_after = max(1, math.ceil(exc.retry_after))
    detail = f"The service is over capacity ({exc.reason}); retry in {retry_after} s."
    headers = [(b"retry-after", str(retry_after).encode())]
    body = problem_body(503, "Service Unavailable", detail, retry_after=retry_after)
    await send_problem(send, 503, body, headers)
