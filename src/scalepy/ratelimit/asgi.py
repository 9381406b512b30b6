"""`RateLimitMiddleware`: rate limiting for any ASGI application, framework-free.

```python
from scalepy.ratelimit import GCRA, RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware, client_ip

app = RateLimitMiddleware(
    app,
    limiter=RateLimiter("redis://localhost:6379/0"),
    policy=TokenBucket(capacity=20, refill_rate=10.0, name="burst"),
    key=client_ip(trusted_proxies=["10.0.0.0/8"]),
    routes={"/login": GCRA(limit=5, period=60, name="login")},
    methods={"POST": writes, "PATCH": writes, "DELETE": writes},
    exempt=["/health"],
)
```

Every limited response carries `RateLimit-Policy` and `RateLimit`
(draft-ietf-httpapi-ratelimit-headers-10); a denied request is answered `429`
with `Retry-After` and an RFC 9457 `application/problem+json` body, and never
reaches the application. A request costing more than its policies allow at once
can never pass: it is answered `413`, with the same kind of body. A request
without an identity (the key function returned `None`: a Unix-socket peer, a
missing header) is never let through unlimited: all such requests share the key
`UNIDENTIFIED`, and the first one is logged. WebSocket and lifespan scopes pass
through untouched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from scalepy._asgi import PROBLEM_TYPE, send_problem
from scalepy._validation import check_object
from scalepy.errors import ConfigurationError, CostExceedsBurst
from scalepy.ratelimit._gate import AsyncLimiter, RequestGate
from scalepy.ratelimit._headers import check_policy_names
from scalepy.ratelimit._keys import (
    EXEMPT,
    UNIDENTIFIED,
    UNIX,
    Exempt,
    KeyFunc,
    client_ip,
    header_key,
    route_suffix,
    user_key,
)
from scalepy.ratelimit._policies import POLICY_KINDS, Policy
from scalepy.ratelimit._problem import too_large_body, too_many_body

if TYPE_CHECKING:
    from scalepy._asgi import ASGIApp, Message, Receive, Scope, Send
    from scalepy.ratelimit._decision import Decision
    from scalepy.ratelimit._headers import HeaderTemplate

__all__ = (
    "EXEMPT",
    "PROBLEM_TYPE",
    "UNIDENTIFIED",
    "UNIX",
    "AsyncLimiter",
    "Exempt",
    "KeyFunc",
    "RateLimitMiddleware",
    "client_ip",
    "header_key",
    "user_key",
)

_DEFAULT_KEY = client_ip()
_Policies: TypeAlias = tuple[Policy, ...]


class RateLimitMiddleware:
    """Limit HTTP requests per key; answer `429` with `Retry-After` when over.

    Args:
        app: The ASGI application to protect.
        limiter: Decides requests, e.g. `RateLimiter("redis://...")`.
        policy: The policy (or policies, decided together) for every request not
            matched by `routes`.
        key: The identity a request is limited as: `client_ip()` (the peer address;
            forwarding headers ignored) by default, or `header_key()`,
            `user_key()`, any `(scope) -> str | EXEMPT | None`. `EXEMPT` lets the
            request through unlimited. `None` (no identity: a Unix-socket peer not
            trusted as a proxy, a missing header) never does: every such request
            shares the quota of the key `UNIDENTIFIED`, and the first one logs a
            warning on the `scalepy.ratelimit` logger.
        routes: Path prefix -> policies for matching paths, instead of `policy`.
            The longest matching prefix wins; prefixes match whole segments
            (`/api` matches `/api` and `/api/x`, not `/apix`); an empty sequence
            exempts the prefix. Each prefix has quotas of its own: the same key is
            limited separately under `/login` and `/signup` (the limiter key is
            the identity, pipes doubled, then `|` and the prefix: no identity can
            forge another's key).
        methods: HTTP method -> policies added, for requests of that method, to
            those of their route (or `policy`), e.g. `{"POST": writes}`: a `POST`
            is decided under both in one limiter call, all or nothing, each policy
            with its own quota, and its response shows both. Not applied on
            exempt paths. Methods are upper case, as HTTP sends them.
        exempt: Path prefixes never limited, e.g. `["/health", "/metrics"]`.
        cost: What a request costs (default 1), e.g. more for uploads. A request
            the limiter refuses with `CostExceedsBurst` (costing more than a
            policy's burst: it reads no quota) is answered `413`. A cost that is
            not a whole number >= 0 (None, a string, NaN, inf, 2.5, a bool) raises
            `ConfigurationError` from the limiter.
        headers: Add `RateLimit-Policy` and `RateLimit` to responses.
        legacy_headers: Add `X-RateLimit-Limit`, `-Remaining` and `-Reset` too.

    Raises:
        ConfigurationError: No policy, something that is not a policy, policy names
            that cannot be shown together, a prefix that does not start with `/`,
            a prefix given twice, `exempt` given as one string, a method that is not
            an upper-case standard HTTP method (`"post"`, `"FETCH"`), a limiter that is
            not one (a URL, say), or a key that is not a function of the scope
            (`key=client_ip` for `key=client_ip()`).
    """

    __slots__ = ("_app", "_cost", "_default", "_gate", "_prefixes", "_rules")

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: AsyncLimiter,
        policy: Policy | Sequence[Policy],
        key: KeyFunc = _DEFAULT_KEY,
        routes: Mapping[str, Policy | Sequence[Policy]] | None = None,
        methods: Mapping[str, Policy | Sequence[Policy]] | None = None,
        exempt: Iterable[str] = (),
        cost: Callable[[Scope], int] | None = None,
        legacy_headers: bool = False,
        headers: bool = True,
    ) -> None:
        check_object(
            "RateLimitMiddleware(limiter=...) takes",
            limiter,
            "acquire",
            "a RateLimiter",
            "e.g. limiter=RateLimiter(url), built once and shared",
        )
        _check_key(key)
        self._app = app
        self._gate = RequestGate(limiter, key, headers=headers, legacy_headers=legacy_headers)
        self._cost = cost
        default = _policies("policy", policy)
        if not default:
            raise ConfigurationError("policy must be a policy or a non-empty list of policies")
        added = _methods(methods or {})
        # prefix -> its rule, then sorted longest prefix first; exemptions have no limits.
        rules: dict[str, _Rule] = {}
        if isinstance(exempt, str):
            raise ConfigurationError(f"exempt must be a list of path prefixes: write [{exempt!r}]")
        for prefix in exempt:
            rules[_prefix("exempt", prefix, rules)] = _EXEMPT_RULE
        for prefix, value in (routes or {}).items():
            normal = _prefix("routes", prefix, rules)
            option = f"routes[{prefix!r}]"
            policies = _policies(option, value)
            rules[normal] = (
                self._rule(option, policies, route_suffix(normal), added)
                if policies
                else _EXEMPT_RULE
            )
        self._default = self._rule("policy", default, route_suffix(None), added)
        # Longest prefix first, each with what a path under it starts with ("" for "/").
        self._rules = tuple(
            (prefix, "" if prefix == "/" else prefix + "/", rule)
            for prefix, rule in sorted(rules.items(), key=lambda rule: len(rule[0]), reverse=True)
        )
        # What every path some rule matches starts with: most paths are told by one call.
        self._prefixes = tuple(rules)

    def _rule(
        self, option: str, policies: _Policies, suffix: str, added: Mapping[str, _Policies]
    ) -> _Rule:
        """The rule of `policies` under `suffix`, with each method's policies added."""
        by_method: dict[str, _Limits] = {}
        for method, extra in added.items():
            both = (*policies, *extra)
            try:
                check_policy_names(both)
            except ValueError as exc:
                raise ConfigurationError(f"{option} with methods[{method!r}]: {exc}") from None
            by_method[method] = _Limits(both, self._gate.template(both))
        return _Rule(suffix, _Limits(policies, self._gate.template(policies)), by_method)

    def _select(self, path: str) -> _Rule:
        """The rule of the longest prefix matching `path`, else the default."""
        for prefix, under, rule in self._rules:
            if path == prefix or path.startswith(under):
                return rule
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Decide an HTTP request, then answer 429 or call the app with headers added."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        rule = self._select(path) if path.startswith(self._prefixes) else self._default
        limits = rule.by_method.get(scope["method"], rule.limits)
        if limits is None:  # exempt
            await self._app(scope, receive, send)
            return
        pending = self._gate.decision(
            scope, limits.policies, rule.suffix, 1 if self._cost is None else self._cost
        )
        if pending is None:  # exempt
            await self._app(scope, receive, send)
            return
        try:
            decision = await pending
        except CostExceedsBurst as exc:  # no wait would ever let it through
            await _too_large(exc.cost, exc.burst, send)
            return
        extra = limits.headers.encode(decision)
        if not decision.allowed:
            await _reject(decision, extra, send)
            return
        if not extra:
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self._app(scope, receive, send_with_headers)


@dataclass(frozen=True, slots=True)
class _Limits:
    """The policies one request is decided under, and what its response carries."""

    policies: _Policies
    """Decided together, in one limiter call."""
    headers: HeaderTemplate
    """What the responses of these policies carry, encoded once."""


@dataclass(frozen=True, slots=True)
class _Rule:
    """What applies to the paths under one prefix (or to every other path)."""

    suffix: str
    """Appended to the escaped identity so that each route has quotas of its own."""
    limits: _Limits | None
    """The limits of a request of a method not in `by_method`; `None` exempts."""
    by_method: Mapping[str, _Limits]
    """Method -> the limits with that method's policies added."""


_EXEMPT_RULE = _Rule("", None, {})

# The methods of RFC 9110 and RFC 5789 (PATCH), as they appear in the scope.
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)


async def _reject(decision: Decision, headers: list[tuple[bytes, bytes]], send: Send) -> None:
    """Answer 429 with an RFC 9457 problem body."""
    await send_problem(send, 429, too_many_body(decision), headers)


async def _too_large(cost: int, burst: int, send: Send) -> None:
    """Answer 413: the request costs more than its policies ever allow at once."""
    await send_problem(send, 413, too_large_body(cost, burst))


def _policies(option: str, value: object) -> _Policies:
    """`value` as a tuple of policies, checked."""
    items: tuple[object, ...]
    kinds = ", ".join(kind.__name__ for kind in POLICY_KINDS)
    if isinstance(value, POLICY_KINDS):
        items = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
    else:
        raise ConfigurationError(
            f"{option} must be a policy ({kinds}) or a list of them, got {value!r}"
        )
    policies: list[Policy] = []
    for item in items:
        if not isinstance(item, POLICY_KINDS):
            raise ConfigurationError(f"{option} must hold policies ({kinds}), got {item!r}")
        policies.append(item)
    try:
        check_policy_names(policies)
    except ValueError as exc:
        raise ConfigurationError(f"{option}: {exc}") from None
    return tuple(policies)


def _methods(methods: Mapping[Any, object]) -> dict[str, _Policies]:
    """`methods` with each method checked and its value as a non-empty tuple of policies.

    Keys typed `Any`: whatever the annotation says, a caller may pass anything.
    """
    checked: dict[str, _Policies] = {}
    for method, value in methods.items():
        if not isinstance(method, str) or method not in _METHODS:
            upper = method.upper() if isinstance(method, str) else None
            hint = f": write {upper!r}" if upper in _METHODS else ""
            raise ConfigurationError(
                f"methods keys must be HTTP methods in upper case "
                f"({', '.join(sorted(_METHODS))}), got {method!r}{hint}"
            )
        policies = _policies(f"methods[{method!r}]", value)
        if not policies:
            raise ConfigurationError(
                f"methods[{method!r}] must hold at least one policy "
                "(to exempt paths, use exempt or an empty routes entry)"
            )
        checked[method] = policies
    return checked


def _prefix(option: str, prefix: object, seen: Mapping[str, object]) -> str:
    """`prefix` without a trailing slash, checked."""
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigurationError(f"{option} path prefixes must start with '/', got {prefix!r}")
    normal = prefix.rstrip("/") or "/"
    if normal in seen:
        raise ConfigurationError(f"{option}: path prefix {prefix!r} is given more than once")
    return normal


_KEY_FACTORIES = (client_ip, header_key, user_key)


def _check_key(key: object) -> None:
    """Refuse a key that cannot be called with the scope, e.g. the factory `client_ip` itself."""
    try:
        if key in _KEY_FACTORIES:
            raise TypeError(key)
        inspect.signature(key).bind({})  # type: ignore[arg-type]  # checked as given
    except TypeError:
        raise ConfigurationError(
            f"key must be a function of the ASGI scope, got {key!r}: call the factory, "
            f"e.g. key=client_ip() or key=header_key('X-API-Key')"
        ) from None
    except ValueError:  # no signature to read (a builtin): trust it
        return
