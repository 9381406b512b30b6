"""`RateLimiter`: decisions from a store, with failure policies, a denial cache and telemetry."""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar, get_args

from scalepy._callables import is_async_callable
from scalepy._lifecycle import LIFECYCLE_SLOTS, AsyncResource
from scalepy._validation import check_finite, check_int
from scalepy.backends._resolve import DEFAULT_BACKEND, resolve_store
from scalepy.backends.guard import BackendGuard
from scalepy.clock import MonotonicClock
from scalepy.errors import BackendError, ConfigurationError, CostExceedsBurst, RateLimitExceeded
from scalepy.ratelimit._algorithms import check_cost
from scalepy.ratelimit._decision import Decision, Outcome, PolicyDecision
from scalepy.ratelimit._lease import LeaseBook
from scalepy.ratelimit._memory import MemoryRateLimitStore
from scalepy.ratelimit._metrics import (
    BACKEND_ERRORS,
    DECISION_DURATION,
    DECISIONS,
    LEASE_TOKENS,
    RESULT,
)
from scalepy.ratelimit._policies import POLICY_KINDS, Policy
from scalepy.ratelimit._store import RateLimitStore
from scalepy.telemetry import ERROR_TYPE, get_default

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from scalepy.backends import BackendConfig
    from scalepy.backends.redis import RedisClient
    from scalepy.clock import Clock
    from scalepy.ratelimit._lease import Hold, Lease
    from scalepy.telemetry import Instrumentation

__all__ = ("FailurePolicy", "RateLimiter", "fixed_cost")

P = ParamSpec("P")
R = TypeVar("R")

FailurePolicy = Literal["fail_open", "fail_closed", "local"]
"""What a limiter does while its backend is unavailable."""

# Built once: a labels dict per outcome, not one per decision.
_RESULT_LABELS = {outcome: {RESULT: outcome.value} for outcome in Outcome}
_ALLOWED_LABELS = _RESULT_LABELS[Outcome.ALLOWED]  # most decisions: no enum hash to look up


class RateLimiter(AsyncResource):
    """Decides requests against one or more policies, shared by every replica via Redis.

    Args:
        backend: `"memory://"` (one process), a Redis URL or config (every replica),
            a `RedisClient` shared with other primitives (the limiter runs on a
            `with_timeout(timeout)` view of it), or a `RateLimitStore`.
        namespace: Separates this limiter's keys from other limiters on one Redis;
            non-empty, no braces.
        timeout: Seconds a Redis decision may take before the failure policy applies.
        on_failure: While the backend is unavailable: `"fail_open"` allows,
            `"fail_closed"` denies, `"local"` decides with an in-process limiter.
        shadow: Decide and report (metrics, `Decision.outcome`), but never deny.
        remember_denied: How many denied keys to answer from memory until their
            `retry_after` has passed, sparing Redis under attack; 0 turns it off.
        remember_denied_for: The longest a remembered denial is answered from memory
            (seconds) before the backend is asked again: how late a `reset()` made
            on another replica may reach this one.
        clock: Time source for waiting, the local fallback and the denial cache.
        instrumentation: Where metrics and span events go (and a Redis client built
            from a URL sends its own); the process default if `None`.
        owns_client: Close a `RedisClient` given as `backend` in `aclose()`; a
            client built from a URL is always closed, a given one by default not.
        lease: Decide most requests of a key that is hot on this replica from
            tokens taken from the shared quota in batches (`Lease`), with the error
            bound its docs state; `None` (the default) decides every request on the
            backend. Ignored on `memory://`.

    Raises:
        ConfigurationError: An unknown failure policy, a non-positive timeout or
            `remember_denied_for`, a namespace that is empty or holds a brace, or a
            backend URL that cannot be parsed.

    Example:
        ```python
        limiter = RateLimiter("redis://localhost:6379/0")
        decision = await limiter.acquire("client:1.2.3.4", TokenBucket(20, 10.0))
        if not decision.allowed:
            ...  # answer 429, retry after decision.retry_after seconds
        ```
    """

    __slots__ = (
        *LIFECYCLE_SLOTS,
        "_backend_errors",
        "_clock",
        "_decisions",
        "_denied",
        "_duration",
        "_fallback",
        "_guard",
        "_instrumentation",
        "_leases",
        "_on_failure",
        "_owns_store",
        "_remember_denied",
        "_remember_denied_for",
        "_shadow",
        "_store",
    )

    def __init__(
        self,
        backend: str | BackendConfig | RedisClient | RateLimitStore = DEFAULT_BACKEND,
        *,
        namespace: str = "default",
        timeout: float = 0.1,
        on_failure: FailurePolicy = "fail_open",
        shadow: bool = False,
        remember_denied: int = 10_000,
        remember_denied_for: float = 1.0,
        clock: Clock | None = None,
        instrumentation: Instrumentation | None = None,
        owns_client: bool = False,
        lease: Lease | None = None,
    ) -> None:
        if on_failure not in get_args(FailurePolicy):
            raise ConfigurationError(
                f"on_failure must be one of {', '.join(get_args(FailurePolicy))}, "
                f"got {on_failure!r}"
            )
        check_int("remember_denied", remember_denied, minimum=0)
        check_finite("remember_denied_for", remember_denied_for)
        self._clock = clock or MonotonicClock()
        self._store, self._owns_store = _build_store(
            backend, namespace, timeout, self._clock, owns_client, instrumentation
        )
        self._fallback = MemoryRateLimitStore(clock=self._clock)
        self._guard = BackendGuard(clock=self._clock, name=f"rate limiter {namespace!r}")
        self._on_failure: FailurePolicy = on_failure
        self._shadow = shadow
        self._remember_denied = remember_denied
        self._remember_denied_for = remember_denied_for
        # key -> (policies, cost, answered from memory until, denied until, decision):
        # the latest denial per key.
        self._denied: OrderedDict[str, tuple[tuple[Policy, ...], int, float, float, Decision]] = (
            OrderedDict()
        )
        self._instrumentation = instrumentation or get_default()
        self._decisions = self._instrumentation.metric(DECISIONS)
        self._duration = self._instrumentation.metric(DECISION_DURATION)
        self._backend_errors = self._instrumentation.metric(BACKEND_ERRORS)
        self._leases: LeaseBook | None = None
        # A memory store the limiter built is its own: every decision is already local.
        if lease is not None and not (
            self._owns_store and isinstance(self._store, MemoryRateLimitStore)
        ):
            tokens = self._instrumentation.metric(LEASE_TOKENS)
            self._leases = LeaseBook(lease, self._clock, tokens)

    @property
    def store(self) -> RateLimitStore:
        """The backend store."""
        return self._store

    async def acquire(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Take `cost` from every policy's quota for `key`, all or nothing.

        Args:
            key: The identity being limited, e.g. `"client:1.2.3.4"` or `"user:42"`.
            *policies: One or more policies, decided together.
            cost: What this request costs, >= 1.

        Returns:
            The decision; when denied, nothing was consumed from any policy.

        Raises:
            ConfigurationError: A key that is not a str, no policy, a policy of
                another type (a string, say), or a cost that is not a whole number >= 0.
            CostExceedsBurst: `cost` is above a policy's burst: it could never be allowed.
        """
        cost = _check_cost(key, policies, cost)
        decision, hold = (
            self._from_memory(key, policies, cost, commit=True)
            if self._denied or self._leases is not None
            else (None, None)  # nothing in memory to answer from: no call
        )
        if decision is None:
            # Only a decision that waits on the backend is timed: one answered from
            # memory costs nothing worth a histogram sample; `decisions` counts it.
            started = self._clock.now()
            decision = await self._ask(key, policies, cost, True, hold)
            self._duration.record(self._clock.now() - started)
        outcome = decision.outcome
        self._decisions.record(
            1, _ALLOWED_LABELS if outcome is Outcome.ALLOWED else _RESULT_LABELS[outcome]
        )
        if not decision.allowed:
            self._instrumentation.event(
                "scalepy.ratelimit.limited",
                {
                    "scalepy.ratelimit.retry_after": decision.retry_after,
                    "scalepy.ratelimit.limit": decision.limit,
                },
            )
            if self._shadow:
                return replace(decision, allowed=True, retry_after=0.0)
        return decision

    async def peek(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Ask what a request of `cost` would get, without consuming anything.

        Returns:
            Whether it would be allowed (with `retry_after` if not); `remaining`
            and `reset_after` describe the quota as it stands.

        Raises:
            ConfigurationError: A key that is not a str, no policy, a policy of
                another type (a string, say), or a cost that is not a whole number >= 0.
            CostExceedsBurst: `cost` is above a policy's burst: it could never be allowed.
        """
        cost = _check_cost(key, policies, cost)
        decision, _ = self._from_memory(key, policies, cost, commit=False)
        if decision is None:
            decision = await self._ask(key, policies, cost, False, None)
        return decision

    async def reset(self, key: str, *policies: Policy) -> None:
        """Make `key`'s quotas under `policies` whole again, on every replica.

        The shared state is deleted at once and this limiter forgets the key's
        denial. Another replica that remembers a denial of the key answers it from
        memory for at most its `remember_denied_for` (1 s by default) before it asks
        the backend, which then allows. The `"local"` fallback's state is per
        process: only this replica's is reset.

        Raises:
            BackendError: The backend could not be reached.
        """
        _check_policies(policies)
        self._denied.pop(key, None)
        if self._leases is not None:
            self._leases.forget(key, policies)
        await self._store.reset(key, policies)
        await self._fallback.reset(key, policies)

    async def wait(self, key: str, *policies: Policy, cost: int = 1, max_wait: float) -> Decision:
        """Wait until `key` may proceed under `policies`, for at most `max_wait` seconds.

        Returns:
            The allowing decision.

        Raises:
            RateLimitExceeded: The wait would exceed `max_wait`; nothing was consumed.
        """
        deadline = self._clock.now() + max_wait
        while True:
            decision = await self.acquire(key, *policies, cost=cost)
            if decision.allowed:
                return decision
            if self._clock.now() + decision.retry_after > deadline:
                raise RateLimitExceeded(key, decision.retry_after)
            await self._clock.sleep(decision.retry_after)

    def limit(
        self, *policies: Policy, key: str | Callable[..., str], cost: int = 1
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorate an async function so each call must pass `policies` first.

        Args:
            *policies: The policies every call is decided against.
            key: The identity to limit: a constant, or a function of the call's
                arguments (e.g. `lambda user_id, **_: f"user:{user_id}"`).
            cost: What each call costs.

        Returns:
            A decorator; the decorated function raises `RateLimitExceeded` (with
            `retry_after`) instead of running when the limit is reached. The
            decorator raises `ConfigurationError` for a function that is not async.

        Raises:
            ConfigurationError: No policy, or a cost that is not a whole number >= 0
                or that is above a policy's burst.
        """
        cost = fixed_cost(policies, cost)

        def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            if not is_async_callable(function):
                raise ConfigurationError(
                    f"limiter.limit decorates async functions (async def); {function!r} is not one"
                )

            @functools.wraps(function)
            async def limited(*args: P.args, **kwargs: P.kwargs) -> R:
                identity = key(*args, **kwargs) if callable(key) else key
                decision = await self.acquire(identity, *policies, cost=cost)
                if not decision.allowed:
                    raise RateLimitExceeded(identity, decision.retry_after)
                return await function(*args, **kwargs)

            return limited

        return decorate

    async def ping(self) -> None:
        """Check now that the backend answers: the startup check of a misconfigured limiter.

        While Redis fails, the limiter decides by `on_failure` and logs one WARNING
        (`scalepy.backends`); call this at startup, e.g. in
        `health.lifespan(on_startup=[limiter.ping])`, to refuse to start instead.

        Raises:
            BackendUnavailable: Redis cannot be reached, or refused the password or
                the database index (`BackendTimeout` if it did not answer in time);
                the message names the cause, `backend` the masked URL.
        """
        await self._guard.ping(self._store)

    async def _aclose(self) -> None:
        """Close the backend if this limiter created it."""
        if self._owns_store:
            await self._store.aclose()

    def __repr__(self) -> str:
        return (
            f"<RateLimiter store={type(self._store).__name__} on_failure={self._on_failure} "
            f"shadow={self._shadow} guard={self._guard!r}>"
        )

    def _from_memory(
        self, key: str, policies: tuple[Policy, ...], cost: int, *, commit: bool
    ) -> tuple[Decision | None, Hold | None]:
        """A decision this replica can answer alone (a remembered denial, leased tokens).

        Returns:
            The decision, `None` when the backend must be asked; and the key's lease
            hold, for `_ask`, when the limiter leases.
        """
        if self._denied:
            remembered = self._remembered_denial(key, policies, cost)
            if remembered is not None:
                return remembered, None
        leases = self._leases
        if leases is not None and commit and cost:
            # Decided here when the key holds tokens, whether or not the backend is up.
            spent, hold = leases.spend(key, policies, cost)
            if spent is not None:
                return Decision.combine(spent, Outcome.LEASED), hold
            return None, hold
        return None, None

    async def _ask(
        self, key: str, policies: tuple[Policy, ...], cost: int, commit: bool, hold: Hold | None
    ) -> Decision:
        """Decide on the backend, or by the failure policy while it is unavailable."""
        leases = self._leases
        if self._guard.available():
            try:
                if hold is None or leases is None:
                    results = await self._store.acquire(key, policies, cost, commit=commit)
                else:
                    results = await leases.remote(self._store, hold, key, policies, cost)
            except BackendError as exc:
                self._guard.record_failure(exc)
                self._backend_errors.record(1, {ERROR_TYPE: type(exc).__name__})
            else:
                self._guard.record_success()
                decision = Decision.combine(results)
                if not decision.allowed and self._remember_denied:
                    self._remember(key, policies, cost, decision)
                return decision
        return await self._fail(key, policies, cost, commit)

    async def _fail(
        self, key: str, policies: tuple[Policy, ...], cost: int, commit: bool
    ) -> Decision:
        if self._on_failure == "local":
            results = await self._fallback.acquire(key, policies, cost, commit=commit)
            return Decision.combine(results, Outcome.LOCAL)
        allowed = self._on_failure == "fail_open"
        # Denied callers come back no sooner than the guard's next probe, and never
        # spin: a second is also the least a Retry-After header can say.
        retry_after = 0.0 if allowed else max(self._guard.retry_after, 1.0)
        results = tuple(
            PolicyDecision(
                policy=policy,
                allowed=allowed,
                remaining=policy.limit if allowed else 0,
                retry_after=retry_after,
                reset_after=0.0,
            )
            for policy in policies
        )
        return Decision.combine(results, Outcome.FAIL_OPEN if allowed else Outcome.FAIL_CLOSED)

    def _remembered_denial(
        self, key: str, policies: tuple[Policy, ...], cost: int
    ) -> Decision | None:
        entry = self._denied.get(key)
        if entry is None:
            return None
        denied_policies, denied_cost, trusted_until, denied_until, decision = entry
        # A denial also answers a request as costly or more under the same policies.
        if policies != denied_policies or cost < denied_cost:
            return None
        now = self._clock.now()
        if now >= trusted_until:  # expired, or time to ask again (a reset elsewhere)
            del self._denied[key]
            return None
        return replace(decision, retry_after=denied_until - now)

    def _remember(
        self, key: str, policies: tuple[Policy, ...], cost: int, decision: Decision
    ) -> None:
        """Keep `decision`, a denial, to answer the key's next requests from memory."""
        now = self._clock.now()
        trusted = min(decision.retry_after, self._remember_denied_for)
        self._denied[key] = (policies, cost, now + trusted, now + decision.retry_after, decision)
        self._denied.move_to_end(key)
        if len(self._denied) > self._remember_denied:
            self._denied.popitem(last=False)


def _build_store(
    backend: str | BackendConfig | RedisClient | RateLimitStore,
    namespace: str,
    timeout: float,
    clock: Clock,
    owns_client: bool,
    instrumentation: Instrumentation | None,
) -> tuple[RateLimitStore, bool]:
    def redis(client: RedisClient, owns: bool) -> RateLimitStore:
        from scalepy.ratelimit._redis import RedisRateLimitStore  # the redis extra, when asked

        return RedisRateLimitStore(client, namespace=namespace, owns_client=owns)

    return resolve_store(
        backend,
        memory=lambda: MemoryRateLimitStore(clock=clock),
        redis=redis,
        protocol=RateLimitStore,
        namespace=namespace,
        timeout=timeout,
        owns_client=owns_client,
        instrumentation=instrumentation,
    )


def fixed_cost(policies: tuple[Policy, ...], cost: object) -> int:
    """`cost` as the cost of every call under `policies`, checked once, when configured.

    Raises:
        ConfigurationError: No policy, or a cost that is not a whole number >= 0 or
            that is above a policy's burst (every call would fail).
    """
    try:
        return _check_cost("", policies, cost)
    except CostExceedsBurst as exc:
        raise ConfigurationError(
            f"cost {exc.cost} can never be allowed: the strictest policy allows at most "
            f"{exc.burst} at once"
        ) from None


def _check_policies(policies: tuple[Policy, ...]) -> None:
    if not policies:
        raise ConfigurationError("give at least one policy")
    for policy in policies:
        _check_policy(policy)


def _check_policy(given: object) -> None:
    """Refuse `given` unless it is a policy, whatever the annotation says."""
    if not isinstance(given, POLICY_KINDS):
        raise ConfigurationError(
            f"a policy must be a TokenBucket, GCRA, SlidingWindow or FixedWindow, got "
            f"{given!r}: e.g. TokenBucket(capacity=20, refill_rate=10.0) for 10/s, burst 20"
        )


def _check_cost(key: object, policies: tuple[Policy, ...], cost: object) -> int:
    """`cost` as an int that every policy could allow when its quota is whole.

    On every call's path: one pass over the policies, no call when all is well.

    Raises:
        ConfigurationError: `key` is not a string (a key function that returned
            None), no policy, or `cost` is not a whole number >= 0.
        CostExceedsBurst: `cost` is above a policy's burst (the smallest is named).
    """
    if not isinstance(key, str):  # checked here, or the Redis store fails deep inside
        raise ConfigurationError(
            f"the rate-limit key must be a str, got {type(key).__name__}"
            " (does the key function return on every path?)"
        )
    if not policies:
        raise ConfigurationError("give at least one policy")
    burst = -1
    for policy in policies:
        if not isinstance(policy, POLICY_KINDS):
            _check_policy(policy)
        max_cost = policy.rule.max_cost
        if burst < 0 or max_cost < burst:  # the strictest names the limit
            burst = max_cost
    checked = cost if type(cost) is int and cost >= 0 else check_cost(cost)
    if checked > burst:
        raise CostExceedsBurst(key, checked, burst)
    return checked
