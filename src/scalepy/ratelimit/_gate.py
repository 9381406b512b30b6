"""`RequestGate`: one HTTP request's rate-limit decision, for any ASGI framework.

Who does what, in call order: the key function names the request's identity
(`EXEMPT` skips the limit; `None` shares the quota of `UNIDENTIFIED`, logged
once); `quota_key` gives each route (or group) quotas of its own; the limiter
decides; `rate_limit_headers` says what the response carries. The ASGI middleware
and the framework integrations answer from the same `Verdict`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scalepy.ratelimit._decision import Outcome
from scalepy.ratelimit._headers import HeaderTemplate, rate_limit_headers
from scalepy.ratelimit._keys import EXEMPT, UNIDENTIFIED, quota_key

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy._asgi import Scope
    from scalepy.ratelimit._decision import Decision
    from scalepy.ratelimit._keys import KeyFunc
    from scalepy.ratelimit._policies import Policy

__all__ = ("AsyncLimiter", "RequestGate", "Verdict")

_logger = logging.getLogger("scalepy.ratelimit")


class AsyncLimiter(Protocol):
    """What the middleware needs from a limiter; `RateLimiter` is one."""

    async def acquire(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Take `cost` from every policy's quota for `key`, all or nothing.

        Raises:
            CostExceedsBurst: `cost` can never be allowed (the middleware answers 413).
            ConfigurationError: `cost` is not a whole number >= 0.
        """
        ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one request and the headers its response carries."""

    decision: Decision
    """The limiter's answer."""
    headers: list[tuple[str, str]]
    """Lower-case names; `Retry-After` first when denied. None for a fail-open decision."""


class RequestGate:
    """Decides HTTP requests by identity, route and policies.

    Args:
        limiter: Decides, e.g. `RateLimiter("redis://...")`.
        key: The identity of a request (see `RateLimitMiddleware`).
        headers: Add `RateLimit-Policy` and `RateLimit`.
        legacy_headers: Add `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
    """

    __slots__ = ("_key", "_legacy", "_limiter", "_standard", "_warned")

    def __init__(
        self, limiter: AsyncLimiter, key: KeyFunc, *, headers: bool, legacy_headers: bool
    ) -> None:
        self._limiter = limiter
        self._key = key
        self._standard = headers
        self._legacy = legacy_headers
        self._warned = False  # about requests without an identity: once, not per request

    def template(self, policies: tuple[Policy, ...]) -> HeaderTemplate:
        """The headers of `policies`' responses, to build once per policy set."""
        return HeaderTemplate(policies, standard=self._standard, legacy=self._legacy)

    async def decide(
        self,
        scope: Scope,
        policies: tuple[Policy, ...],
        suffix: str,
        cost: int | Callable[[Scope], int],
    ) -> Verdict | None:
        """Decide the request of `scope` under `policies`; `None` when its key is `EXEMPT`.

        Args:
            scope: The request's ASGI scope.
            policies: Decided together.
            suffix: `route_suffix()` of the route (or group) the quotas belong to.
            cost: What the request costs, or a function of its scope saying so
                (called only for a request that is limited).

        Raises:
            CostExceedsBurst: The limiter refused the cost: it could never be allowed.
        """
        pending = self.decision(scope, policies, suffix, cost)
        if pending is None:
            return None
        decision = await pending
        # A fail-open decision was not reached on real state: advertise nothing.
        real = decision.outcome is not Outcome.FAIL_OPEN
        headers = rate_limit_headers(
            decision, standard=self._standard and real, legacy=self._legacy and real
        )
        return Verdict(decision, headers)

    def decision(
        self,
        scope: Scope,
        policies: tuple[Policy, ...],
        suffix: str,
        cost: int | Callable[[Scope], int],
    ) -> Awaitable[Decision] | None:
        """`decide` without the headers: the limiter's answer to await, or `None` for `EXEMPT`.

        Not a coroutine itself: the request awaits the limiter's, one frame fewer.

        Raises:
            CostExceedsBurst: When awaited: the limiter refused the cost.
        """
        identity = self._key(scope)
        if identity is None:
            identity = self._unidentified(scope)
        elif identity is EXEMPT:
            return None
        if callable(cost):
            cost = cost(scope)
        return self._limiter.acquire(quota_key(identity, suffix), *policies, cost=cost)

    def _unidentified(self, scope: Scope) -> str:
        """The shared key of requests without an identity; the first one is logged."""
        if not self._warned:
            self._warned = True
            _logger.warning(
                "the rate-limit key function %r found no identity for %s %s (a Unix-socket "
                "peer: add 'unix' to client_ip(trusted_proxies=...) behind a proxy that "
                "sets the forwarding header; or a missing header or user); every such "
                "request now shares the quota of the key %r. Return EXEMPT from the key "
                "function to let such requests through on purpose. Logged once.",
                self._key,
                scope.get("method", "?"),
                scope.get("path", "?"),
                UNIDENTIFIED,
            )
        return UNIDENTIFIED
