"""`RateLimitMiddleware(methods=...)`: policies added by HTTP method, decided in one call."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.errors import ConfigurationError
from scalepy.ratelimit import GCRA, FixedWindow, RateLimiter, TokenBucket
from scalepy.ratelimit.asgi import RateLimitMiddleware
from scalepy.testing import AsgiResponse, FakeClock, asgi_request
from tests.ratelimit.test_middleware import PEER, CountingApp, RecordingLimiter

if TYPE_CHECKING:
    from scalepy._asgi import ASGIApp

REQUESTS = FixedWindow(limit=5, window=60, name="requests")
WRITES = FixedWindow(limit=2, window=60, name="writes")
WRITE_METHODS = {"POST": WRITES, "PATCH": WRITES, "DELETE": WRITES}


def limits(**options: Any) -> RateLimitMiddleware:
    """Five requests a minute, two of them writes, on a counting app, in memory."""
    options.setdefault("limiter", RateLimiter("memory://", clock=FakeClock()))
    options.setdefault("policy", REQUESTS)
    options.setdefault("methods", WRITE_METHODS)
    return RateLimitMiddleware(CountingApp(), **options)


async def send(app: ASGIApp, method: str, path: str = "/todos") -> AsgiResponse:
    """One request of `method` from the usual client."""
    return await asgi_request(app, path, method=method, peer=PEER)


async def test_a_write_is_decided_under_both_policies_in_one_call() -> None:
    """A POST asks the limiter once, under the default and the POST policies, on one key."""
    limiter = RecordingLimiter()
    limited = limits(limiter=limiter)
    for method in ("GET", "POST", "HEAD", "DELETE", "PUT"):
        await send(limited, method)
    expected = [
        ("ip:203.0.113.7", (REQUESTS,), 1),
        ("ip:203.0.113.7", (REQUESTS, WRITES), 1),
        ("ip:203.0.113.7", (REQUESTS,), 1),
        ("ip:203.0.113.7", (REQUESTS, WRITES), 1),
        ("ip:203.0.113.7", (REQUESTS,), 1),  # PUT is not in methods
    ]
    assert expected == limiter.calls


async def test_a_write_shows_both_policies_and_a_read_its_own() -> None:
    """RateLimit-Policy and RateLimit list the route's policies, then the method's."""
    limited = limits()
    write = await send(limited, "POST")
    read = await send(limited, "GET")
    assert (
        '"requests";q=5;w=60, "writes";q=2;w=60',
        '"requests";r=4;t=60, "writes";r=1;t=60',
    ) == (write.header("ratelimit-policy"), write.header("ratelimit"))
    assert ('"requests";q=5;w=60', '"requests";r=3;t=60') == (
        read.header("ratelimit-policy"),
        read.header("ratelimit"),
    )


async def test_writes_past_their_quota_are_429_and_reads_are_unaffected() -> None:
    """The write quota is its own: used up, writes are 429 while reads go on."""
    limited = limits()
    assert [200, 200] == [(await send(limited, "POST")).status for _ in range(2)]
    denied = await send(limited, "PATCH")
    assert (429, "60") == (denied.status, denied.header("retry-after"))
    assert '"requests";r=3;t=60, "writes";r=0;t=60' == denied.header("ratelimit")
    assert [200, 200, 200] == [(await send(limited, "GET")).status for _ in range(3)]
    assert 429 == (await send(limited, "GET")).status


async def test_a_denied_write_takes_nothing_from_the_shared_quota() -> None:
    """All or nothing: writes refused by their own policy leave every read its quota.

    With two middlewares, the first took a request's token before the second refused
    the write: a client retrying writes used up its reads.
    """
    limited = limits(policy=FixedWindow(limit=4, window=60, name="requests"))
    statuses = [(await send(limited, "POST")).status for _ in range(5)]
    reads = [(await send(limited, "GET")).status for _ in range(3)]
    assert ([200, 200, 429, 429, 429], [200, 200, 429]) == (statuses, reads)


async def test_methods_add_to_each_route_policies_under_the_route_key() -> None:
    """A route's writes are limited by the route's policies and the method's, per route."""
    login = GCRA(limit=5, period=60, name="login")
    limiter = RecordingLimiter()
    limited = limits(limiter=limiter, routes={"/login": login, "/open": []}, exempt=["/health"])
    for method, path in (("POST", "/login"), ("GET", "/login"), ("POST", "/health")):
        await send(limited, method, path)
    assert 200 == (await send(limited, "POST", "/open")).status
    expected = [
        ("ip:203.0.113.7|/login", (login, WRITES), 1),
        ("ip:203.0.113.7|/login", (login,), 1),
    ]
    assert expected == limiter.calls


async def test_a_method_policy_equal_to_the_route_one_shares_its_quota() -> None:
    """Equal policies share state (the limiter keys it by policy): the verdicts stay the same.

    The method's policy counts a subset of the requests the route's counts, so it could
    not refuse a request the route's policy allows.
    """
    twin = FixedWindow(limit=5, window=60, name="twin")
    limited = limits(methods={"POST": twin})
    statuses = [(await send(limited, method)).status for method in ["GET", "POST"] * 3]
    assert [200, 200, 200, 200, 200, 429] == statuses


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE"]), max_size=20))
def test_decisions_follow_the_two_counters_model(methods: list[str]) -> None:
    """Against a model of two counters: a read needs one request left, a write one of each.

    A request takes from every counter it needs, or from none.
    """
    limited = limits()
    requests_left, writes_left = REQUESTS.limit, WRITES.limit
    expected: list[int] = []
    for method in methods:
        write = method in WRITE_METHODS
        allowed = requests_left > 0 and (writes_left > 0 or not write)
        if allowed:
            requests_left -= 1
            writes_left -= write
        expected.append(200 if allowed else 429)
    assert expected == asyncio.run(statuses(limited, methods))


async def statuses(app: ASGIApp, methods: list[str]) -> list[int]:
    """The statuses of `methods`' requests, sent one after the other."""
    return [(await send(app, method)).status for method in methods]


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        ({"post": WRITES}, "HTTP methods in upper case (CONNECT, DELETE, GET, HEAD, OPTIONS"),
        ({"post": WRITES}, "got 'post': write 'POST'"),
        ({"FETCH": WRITES}, "got 'FETCH'"),
        ({1: WRITES}, "got 1"),
        ({"POST": []}, "methods['POST'] must hold at least one policy"),
        ({"POST": "20/s"}, "methods['POST'] must be a policy (TokenBucket"),
        (
            {"POST": TokenBucket(capacity=2, refill_rate=1.0, name="requests")},
            "policy with methods['POST']: policies shown together need distinct names",
        ),
        (
            {"POST": TokenBucket(capacity=2, refill_rate=1.0)},  # "p1" after the route's
            "routes['/x'] with methods['POST']: policies shown together need distinct names",
        ),
    ],
)
def test_bad_methods_raise_at_construction(methods: dict[Any, Any], message: str) -> None:
    """Methods are upper-case HTTP methods with policies that can be shown beside the route's."""
    route = TokenBucket(capacity=9, refill_rate=9.0, name="p1")
    with pytest.raises(ConfigurationError) as info:
        limits(methods=methods, routes={"/x": route})
    assert message in str(info.value)
