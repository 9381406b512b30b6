"""`RateLimitMiddleware`, driven in-process through raw ASGI calls and a Starlette app."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from scalepy.errors import ConfigurationError, CostExceedsBurst
from scalepy.ratelimit import (
    GCRA,
    Decision,
    FixedWindow,
    Outcome,
    Policy,
    PolicyDecision,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)
from scalepy.ratelimit.asgi import (
    EXEMPT,
    UNIDENTIFIED,
    UNIX,
    RateLimitMiddleware,
    client_ip,
    header_key,
    user_key,
)
from scalepy.testing import AsgiResponse, FakeClock, asgi_request
from tests.support.asgi import run_lifespan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from starlette.requests import HTTPConnection, Request

    # scalepy's own ASGI type aliases (ASGI is a convention; scalepy exports no types for it).
    from scalepy._asgi import ASGIApp, Message, Receive, Scope, Send

PAIR = TokenBucket(capacity=2, refill_rate=0.05, name="pair")
"""Two requests at once, then one per 20 s; the whole bucket refills in 40 s."""
PEER = "203.0.113.7"
PEER_V4 = "198.51.100.7"


@dataclass
class RecordingLimiter:
    """A real memory limiter that also records each call's key and cost."""

    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(clock=FakeClock()))
    calls: list[tuple[str, tuple[Policy, ...], int]] = field(default_factory=list)

    async def acquire(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Record the call, then decide it."""
        self.calls.append((key, policies, cost))
        return await self.limiter.acquire(key, *policies, cost=cost)


@dataclass
class FixedLimiter:
    """Answers every call with one decision."""

    decision: Decision

    async def acquire(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Return the fixed decision."""
        return self.decision


@dataclass
class CountingApp:
    """A raw ASGI app answering 200 "ok" with a header of its own, counting its calls."""

    scopes: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer HTTP; record every scope type."""
        self.scopes.append(scope["type"])
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def request(
    app: ASGIApp, path: str = "/", *, peer: str = PEER, headers: Sequence[tuple[str, str]] = ()
) -> AsgiResponse:
    """Send one GET through `app` from the usual client address."""
    return await asgi_request(app, path, peer=peer, headers=headers)


def middleware(app: ASGIApp | None = None, **options: Any) -> RateLimitMiddleware:
    """The middleware around `app` (a counting app by default) with a recording limiter."""
    options.setdefault("limiter", RecordingLimiter())
    options.setdefault("policy", PAIR)
    return RateLimitMiddleware(app or CountingApp(), **options)


async def homepage(request: Request) -> PlainTextResponse:
    """A Starlette endpoint."""
    return PlainTextResponse("hello")


def starlette_app() -> Starlette:
    """A tiny Starlette application."""
    return Starlette(routes=[Route("/", homepage), Route("/login", homepage)])


async def test_allowed_response_gets_ratelimit_headers() -> None:
    """The app's response passes, with RateLimit-Policy and RateLimit added."""
    response = await request(middleware(starlette_app()))
    assert 200 == response.status
    assert b"hello" == response.body
    assert '"pair";q=2;w=40' == response.header("ratelimit-policy")
    assert '"pair";r=1;t=20' == response.header("ratelimit")
    assert "text/plain; charset=utf-8" == response.header("content-type")


async def test_a_fixed_window_route_counts_down_to_the_window_end() -> None:
    """A fixed window is a policy like the others: headers, then 429 until its window ends."""
    limiter = RecordingLimiter(RateLimiter(clock=FakeClock(30.0)))  # mid-way through a minute
    minute = FixedWindow(limit=2, window=60, name="minute")
    app = middleware(limiter=limiter, routes={"/report": minute})
    first = await request(app, "/report")
    assert ('"minute";q=2;w=60', '"minute";r=1;t=30') == (
        first.header("ratelimit-policy"),
        first.header("ratelimit"),
    )
    assert 200 == (await request(app, "/report")).status
    denied = await request(app, "/report")
    assert (429, "30", '"minute";r=0;t=30') == (
        denied.status,
        denied.header("retry-after"),
        denied.header("ratelimit"),
    )


async def test_headers_on_every_response_even_not_found() -> None:
    """Error responses from the app carry the headers too."""
    response = await request(middleware(starlette_app()), "/missing")
    assert (404, '"pair";r=1;t=20') == (response.status, response.header("ratelimit"))


async def test_raw_app_keeps_its_own_headers() -> None:
    """Headers are appended after the app's own."""
    response = await request(middleware())
    expected = [
        ("x-app", "1"),
        ("ratelimit-policy", '"pair";q=2;w=40'),
        ("ratelimit", '"pair";r=1;t=20'),
    ]
    assert expected == response.headers


async def test_over_limit_answers_429_problem_json() -> None:
    """The third request is refused with an RFC 9457 body and the app is not called."""
    app = CountingApp()
    limited = middleware(app)
    for _ in range(2):
        await request(limited)
    response = await request(limited)
    body = {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Rate limit exceeded; retry in 20 s.",
        "retry_after": 20,
    }
    assert 429 == response.status
    assert body == json.loads(response.body)
    expected_headers = [
        ("content-type", "application/problem+json"),
        ("content-length", str(len(response.body))),
        ("retry-after", "20"),
        ("ratelimit-policy", '"pair";q=2;w=40'),
        ("ratelimit", '"pair";r=0;t=20'),
    ]
    assert expected_headers == response.headers
    assert ["http", "http"] == app.scopes


async def test_spoofed_forwarded_for_shares_the_peer_bucket() -> None:
    """An untrusted client changing X-Forwarded-For still uses its own quota."""
    limited = middleware(key=client_ip(trusted_proxies=["10.0.0.0/8"]))
    statuses = [
        (await request(limited, headers=[("x-forwarded-for", f"198.51.100.{n}")])).status
        for n in range(3)
    ]
    assert [200, 200, 429] == statuses


async def test_trusted_proxy_clients_have_separate_buckets() -> None:
    """Behind a trusted proxy each forwarded client has its own quota."""
    limiter = RecordingLimiter()
    limited = middleware(limiter=limiter, key=client_ip(trusted_proxies=["10.0.0.0/8"]))
    for n in range(3):
        await request(limited, peer="10.0.0.1", headers=[("x-forwarded-for", f"198.51.100.{n}")])
    keys = [key for key, _, _ in limiter.calls]
    assert ["ip:198.51.100.0", "ip:198.51.100.1", "ip:198.51.100.2"] == keys


async def test_ipv6_addresses_of_one_slash_64_share_a_quota() -> None:
    """A client cannot multiply its quota by picking fresh addresses from its /64."""
    limited = middleware()
    peers = ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:abcd::3", "2001:db8:1:3::1"]
    statuses = [(await request(limited, peer=peer)).status for peer in peers]
    assert [200, 200, 429, 200] == statuses


@pytest.mark.parametrize(
    "peers",
    [
        # 6to4 (2002:c633:6407::/48 is 198.51.100.7's): 65536 /64s for one IPv4 host.
        ("2002:c633:6407::1", "2002:c633:6407:1::1", "2002:c633:6407:ffff::1", PEER_V4),
        # Teredo: the client's IPv4 is the inverted low 32 bits, whatever its port.
        (
            "2001:0:4136:e378:8000:63bf:39cc:9bf8",
            "2001:0:4136:e378:8000:1234:39cc:9bf8",
            "2001:0:4136:e378:8000:abcd:39cc:9bf8",
            PEER_V4,
        ),
        # NAT64 / SIIT's well-known prefix: an IPv4 client seen by an IPv6-only server.
        ("64:ff9b::c633:6407", "64:ff9b::c633:6407", "64:ff9b::c633:6407", PEER_V4),
    ],
    ids=["6to4", "teredo", "nat64"],
)
async def test_ipv6_transition_addresses_are_keyed_by_their_ipv4_host(
    redis_url: str, key_prefix: str, peers: Sequence[str]
) -> None:
    """An address carrying an IPv4 host shares that host's quota, however it varies.

    By its /64 alone, one 6to4 host would hold 65536 quotas, and every IPv4 client
    behind a NAT64 gateway (or one Teredo server) would share a single quota.
    """
    async with RateLimiter(redis_url, namespace=key_prefix) as limiter:
        limited = middleware(limiter=limiter)
        statuses = [(await request(limited, peer=peer)).status for peer in peers]
        other = (await request(limited, peer="64:ff9b::c633:6408")).status  # 198.51.100.8
    assert ([200, 200, 429, 429], 200) == (statuses, other)


async def test_per_route_policies_longest_prefix_wins() -> None:
    """Each path uses the policies of its longest matching prefix, with quotas of its own."""
    login = GCRA(limit=5, period=60, name="login")
    admin = TokenBucket(capacity=3, refill_rate=1.0, name="admin")
    limiter = RecordingLimiter()
    limited = middleware(limiter=limiter, routes={"/login/": login, "/login/admin": [admin, PAIR]})
    for path in ("/", "/login", "/login/x", "/loginx", "/login/admin/users"):
        await request(limited, path)
    expected = [
        ("ip:203.0.113.7", (PAIR,), 1),
        ("ip:203.0.113.7|/login", (login,), 1),
        ("ip:203.0.113.7|/login", (login,), 1),
        ("ip:203.0.113.7", (PAIR,), 1),
        ("ip:203.0.113.7|/login/admin", (admin, PAIR), 1),
    ]
    assert expected == limiter.calls


async def test_an_identity_cannot_spend_another_identity_quota_on_a_route() -> None:
    """An identity ending in `|/login` on the default route has a quota of its own."""
    limiter = RecordingLimiter()
    limited = middleware(
        limiter=limiter, key=header_key("x-user", prefix="", hashed=False), routes={"/login": PAIR}
    )
    forged = [("x-user", "alice|/login")]
    assert [200, 200] == [(await request(limited, "/", headers=forged)).status for _ in range(2)]
    alice = await request(limited, "/login", headers=[("x-user", "alice")])
    assert 200 == alice.status
    assert ["alice||/login", "alice||/login", "alice|/login"] == [k for k, _, _ in limiter.calls]


async def test_route_policies_in_headers() -> None:
    """A route's response advertises the route's policies."""
    limited = middleware(starlette_app(), routes={"/login": GCRA(limit=5, period=60)})
    response = await request(limited, "/login")
    assert '"p0";q=5;w=60' == response.header("ratelimit-policy")


async def test_root_route_matches_everything() -> None:
    """A "/" route replaces the default policy everywhere."""
    limiter = RecordingLimiter()
    everywhere = SlidingWindow(limit=9, window=1)
    await request(middleware(limiter=limiter, routes={"/": everywhere}), "/a/b")
    assert [("ip:203.0.113.7|/", (everywhere,), 1)] == limiter.calls


@pytest.mark.parametrize("options", [{"exempt": ["/health"]}, {"routes": {"/health": []}}])
async def test_exempt_paths_are_never_limited(options: dict[str, Any]) -> None:
    """Exempt prefixes (or routes with no policy) skip the limiter and get no headers."""
    limiter = RecordingLimiter()
    limited = middleware(limiter=limiter, **options)
    responses = [await request(limited, "/health/live") for _ in range(3)]
    assert [200, 200, 200] == [response.status for response in responses]
    assert [("x-app", "1")] == responses[-1].headers
    assert [] == limiter.calls


def over_unix_socket(app: ASGIApp) -> ASGIApp:
    """`app` as a server on a Unix socket calls it: the scope has no client address."""

    async def unix(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "client": None}, receive, send)

    return unix


def identity_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings the middleware logged about requests without an identity."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "scalepy.ratelimit" and record.levelno == logging.WARNING
    ]


async def test_unix_socket_requests_share_one_quota_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a peer address nothing is silently unlimited: one shared key, one warning."""
    limiter = RecordingLimiter()
    limited = over_unix_socket(middleware(limiter=limiter))
    statuses = [
        (await request(limited, headers=[("x-forwarded-for", f"198.51.100.{n}")])).status
        for n in range(3)
    ]
    assert [200, 200, 429] == statuses
    assert [UNIDENTIFIED] * 3 == [key for key, _, _ in limiter.calls]
    (warning,) = identity_warnings(caplog)
    assert "found no identity for GET /" in warning
    assert "add 'unix' to client_ip(trusted_proxies=...)" in warning


async def test_trusted_unix_socket_clients_have_their_own_quotas(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With "unix" trusted, each client the proxy forwards has its own quota."""
    limiter = RecordingLimiter()
    limited = over_unix_socket(middleware(limiter=limiter, key=client_ip(trusted_proxies=[UNIX])))
    for n in range(3):
        await request(limited, headers=[("x-forwarded-for", f"198.51.100.{n}")])
    keys = [key for key, _, _ in limiter.calls]
    assert ["ip:198.51.100.0", "ip:198.51.100.1", "ip:198.51.100.2"] == keys
    assert [] == identity_warnings(caplog)


async def test_a_key_function_returning_none_by_accident_is_limited_and_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A missing API key (or a forgotten return) shares one quota, per route, with one warning."""
    limiter = RecordingLimiter()
    limited = middleware(limiter=limiter, key=header_key("x-api-key"), routes={"/login": PAIR})
    statuses = [(await request(limited, path)).status for path in ("/", "/", "/", "/login")]
    assert [200, 200, 429, 200] == statuses
    expected = [UNIDENTIFIED] * 3 + [f"{UNIDENTIFIED}|/login"]
    assert expected == [key for key, _, _ in limiter.calls]
    assert 1 == len(identity_warnings(caplog))


async def test_exempt_from_the_key_function_skips_the_limit() -> None:
    """EXEMPT is the one way a key function lets a request through unlimited."""
    limiter = RecordingLimiter()
    api_key = header_key("x-api-key")
    limited = middleware(limiter=limiter, key=lambda scope: api_key(scope) or EXEMPT)
    responses = [await request(limited) for _ in range(3)]
    assert [200, 200, 200] == [response.status for response in responses]
    assert ([("x-app", "1")], []) == (responses[-1].headers, limiter.calls)


async def test_header_key_limits_per_api_key() -> None:
    """Each API key has its own quota."""
    limited = middleware(key=header_key("x-api-key", hashed=False))
    statuses = [
        (await request(limited, headers=[("x-api-key", name)])).status
        for name in ("a", "a", "b", "a")
    ]
    assert [200, 200, 200, 429] == statuses


async def test_cost_function() -> None:
    """The cost function's value is taken from the quota."""
    limiter = RecordingLimiter()
    limited = middleware(limiter=limiter, cost=lambda scope: 2 if scope["path"] == "/big" else 1)
    response = await request(limited, "/big")
    assert '"pair";r=0;t=40' == response.header("ratelimit")
    assert 2 == limiter.calls[0][2]


@pytest.mark.parametrize("cost", [None, "3", float("inf"), 2.5, True], ids=repr)
async def test_a_cost_function_returning_no_whole_number_is_a_configuration_error(
    redis_url: str, key_prefix: str, cost: object
) -> None:
    """A forgotten `return` (None), a string or inf is refused as the limiter refuses it.

    None and strings raised a bare TypeError from comparing them with the burst;
    inf was answered 413 as if it were a cost.
    """
    app = CountingApp()
    async with RateLimiter(redis_url, namespace=key_prefix) as limiter:
        limited = middleware(app, limiter=limiter, cost=lambda scope: cost)
        with pytest.raises(ConfigurationError, match="cost must be a whole number >= 0"):
            await request(limited)
    assert [] == app.scopes


async def test_a_cost_above_the_burst_answers_413_problem_json() -> None:
    """An upload costing more than the burst can never pass: 413, not a 500, and no app call.

    The limiter refuses it (before reading any quota) and the middleware maps that to 413.
    """
    app, limiter = CountingApp(), RecordingLimiter()
    limited = middleware(app, limiter=limiter, cost=lambda scope: 50)
    response = await request(limited, "/upload")
    body = {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": "This request costs 50; at most 2 can ever be allowed at once.",
    }
    assert 413 == response.status
    assert body == json.loads(response.body)
    expected_headers = [
        ("content-type", "application/problem+json"),
        ("content-length", str(len(response.body))),
    ]
    assert expected_headers == response.headers
    assert ([], [50]) == (app.scopes, [cost for _, _, cost in limiter.calls])
    assert 2 == (await limiter.limiter.peek(limiter.calls[0][0], *limiter.calls[0][1])).remaining


class RefusingLimiter:
    """A limiter of its own, whose quotas never hold a whole request."""

    async def acquire(self, key: str, *policies: Policy, cost: int = 1) -> Decision:
        """Refuse the request: it costs more than the 0 allowed at once."""
        raise CostExceedsBurst(key, cost, 0)


async def test_the_limiter_alone_decides_what_can_never_pass() -> None:
    """Whatever its reason, a limiter's `CostExceedsBurst` is a 413: one check, in the limiter."""
    app = CountingApp()
    limited = middleware(app, limiter=RefusingLimiter())
    response = await request(limited, "/any")
    assert (413, []) == (response.status, app.scopes)
    assert "This request costs 1; at most 0" in json.loads(response.body)["detail"]


async def test_a_cost_within_the_burst_but_above_what_is_left_answers_429() -> None:
    """A cost the bucket can hold, but not right now, is an ordinary denial."""
    limited = middleware(cost=lambda scope: 2, routes={"/big": [PAIR, SlidingWindow(5, 60)]})
    assert [200, 429] == [(await request(limited, "/big")).status for _ in range(2)]


async def test_legacy_headers() -> None:
    """X-RateLimit-* are added on request."""
    response = await request(middleware(legacy_headers=True))
    expected = [
        ("x-app", "1"),
        ("ratelimit-policy", '"pair";q=2;w=40'),
        ("ratelimit", '"pair";r=1;t=20'),
        ("x-ratelimit-limit", "2"),
        ("x-ratelimit-remaining", "1"),
        ("x-ratelimit-reset", "20"),
    ]
    assert expected == response.headers


async def test_headers_can_be_turned_off() -> None:
    """Without headers an allowed response is untouched and a 429 keeps Retry-After."""
    limited = middleware(headers=False)
    allowed = await request(limited)
    await request(limited)
    denied = await request(limited)
    assert [("x-app", "1")] == allowed.headers
    assert ["content-type", "content-length", "retry-after"] == [n for n, _ in denied.headers]


async def test_fail_open_decision_advertises_nothing() -> None:
    """A decision made without the backend carries no made-up quota headers."""
    fail_open = Decision.combine(
        (PolicyDecision(policy=PAIR, allowed=True, remaining=2, retry_after=0, reset_after=0),),
        Outcome.FAIL_OPEN,
    )
    response = await request(middleware(limiter=FixedLimiter(fail_open), legacy_headers=True))
    assert [("x-app", "1")] == response.headers


async def test_user_key_behind_authentication_middleware() -> None:
    """Authenticated users are limited per user; anonymous ones share one quota."""

    class HeaderAuth(AuthenticationBackend):
        """Authenticates `x-user` as that user."""

        async def authenticate(
            self, conn: HTTPConnection
        ) -> tuple[AuthCredentials, SimpleUser] | None:
            user = conn.headers.get("x-user")
            return None if user is None else (AuthCredentials(["authenticated"]), SimpleUser(user))

    app = Starlette(
        routes=[Route("/", homepage)],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=HeaderAuth()),
            Middleware(
                RateLimitMiddleware, limiter=RecordingLimiter(), policy=PAIR, key=user_key()
            ),
        ],
    )
    alice = [("x-user", "alice")]
    statuses = [(await request(app, headers=alice)).status for _ in range(3)]
    anonymous = [(await request(app)).status for _ in range(3)]
    assert ([200, 200, 429], [200, 200, 429]) == (statuses, anonymous)


async def test_websocket_scope_passes_untouched() -> None:
    """WebSocket connections reach the app without a decision."""
    app, limiter = CountingApp(), RecordingLimiter()
    scope: Scope = {"type": "websocket", "path": "/", "client": (PEER, 1), "headers": []}

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError(message)

    await middleware(app, limiter=limiter)(scope, receive, send)
    assert (["websocket"], []) == (app.scopes, limiter.calls)


async def test_lifespan_passes_to_starlette() -> None:
    """Lifespan startup and shutdown reach the application."""
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = middleware(Starlette(lifespan=asynccontextmanager(lifespan)))
    sent = await run_lifespan(app)
    expected = ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert (["startup", "shutdown"], expected) == (events, sent)


def test_bad_policy_raises_at_construction() -> None:
    """Capacity 0 and negative rates are refused before any request."""
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        middleware(policy=TokenBucket(capacity=0, refill_rate=1.0))
    with pytest.raises(ValueError, match="refill_rate must be a finite number > 0"):
        middleware(policy=TokenBucket(capacity=5, refill_rate=-1.0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy": []}, "policy must be a policy or a non-empty list"),
        (
            {"policy": "10/minute"},
            "policy must be a policy (TokenBucket, GCRA, SlidingWindow, FixedWindow)",
        ),
        (
            {"policy": [PAIR, 10]},
            "policy must hold policies (TokenBucket, GCRA, SlidingWindow, FixedWindow)",
        ),
        ({"policy": [PAIR, PAIR]}, "policy: policies shown together need distinct names"),
        (
            {"routes": {"/x": SlidingWindow(limit=1, window=1, name="é")}},
            "routes['/x']: policy name must be printable ASCII",
        ),
        ({"routes": {"api": PAIR}}, "routes path prefixes must start with '/', got 'api'"),
        ({"routes": {"/api": PAIR, "/api/": PAIR}}, "path prefix '/api/' is given more than once"),
        ({"exempt": ["/health"], "routes": {"/health": PAIR}}, "'/health' is given more than once"),
        ({"exempt": "/health"}, "exempt must be a list of path prefixes: write ['/health']"),
        ({"exempt": [""]}, "exempt path prefixes must start with '/', got ''"),
    ],
)
def test_bad_configuration_raises_at_construction(options: dict[str, Any], message: str) -> None:
    """Every option is checked when the middleware is built, with a clear message."""
    with pytest.raises(ConfigurationError) as info:
        middleware(**options)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("limiter", "expected"),
    [
        ("redis://app:s3cret@127.0.0.1:6379/0", "takes a RateLimiter, not a URL"),
        (object(), "takes a RateLimiter, not a object"),
    ],
)
def test_a_limiter_that_is_not_one_is_refused_at_startup(limiter: object, expected: str) -> None:
    """`limiter="redis://…"` fails when the app is built, password masked, not on each request."""
    with pytest.raises(ConfigurationError, match=expected) as raised:
        middleware(limiter=limiter)
    assert ("s3cret" in str(raised.value), "RateLimiter(url)" in str(raised.value)) == (False, True)


@pytest.mark.parametrize("key", [client_ip, header_key, user_key, lambda: "everyone"])
def test_a_key_that_is_no_function_of_the_scope_is_refused_at_startup(key: Any) -> None:
    """`key=client_ip` (the factory, not called) fails when the app is built, showing the call.

    It used to fail every request with a TypeError (a 500 from the middleware).
    """
    with pytest.raises(ConfigurationError, match=r"call the factory, e\.g\. key=client_ip\(\)"):
        middleware(key=key)
