"""scalepy.integrations.fastapi: the rate-limit dependency, problem+json, OpenAPI, install()."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from fastapi_app import create_app
from openapi_spec_validator import validate

from scalepy.breaker import CircuitOpenError
from scalepy.cache import Cache
from scalepy.errors import ConfigurationError
from scalepy.health import Health
from scalepy.integrations.fastapi import (
    RateLimited,
    error_responses,
    install,
    limit,
    problem_handlers,
)
from scalepy.ratelimit import (
    EXEMPT,
    GCRA,
    Decision,
    RateLimiter,
    RateLimitMiddleware,
    TokenBucket,
    client_ip,
)
from scalepy.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ONE_A_MINUTE = GCRA(limit=1, period=60, name="minute")


def limited_app(*routes: str, **options: Any) -> FastAPI:
    """An app whose `routes` all answer `{"ok": true}` behind one `limit(ONE_A_MINUTE)`."""
    limiter = RateLimiter("memory://", clock=FakeClock())
    dependency = limit(ONE_A_MINUTE, limiter=limiter, **options)
    app = FastAPI(exception_handlers=problem_handlers())
    for path in routes:
        app.add_api_route(path, _ok, dependencies=[Depends(dependency)])
    return app


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def test_the_example_app_openapi_document_is_valid() -> None:
    """The FastAPI page's app publishes an OpenAPI document the validator accepts."""
    document = create_app(namespace=f"openapi-{uuid.uuid4().hex}").openapi()
    validate(document)
    assert {"429"} <= document["paths"]["/todos/{todo_id}"]["put"]["responses"].keys()


def test_a_denial_is_answered_as_the_middleware_answers_it() -> None:
    """Status, headers and body of the dependency's 429 are the middleware's, byte for byte."""
    middleware = FastAPI()
    middleware.add_api_route("/", _ok)
    middleware.add_middleware(
        RateLimitMiddleware,
        limiter=RateLimiter("memory://", clock=FakeClock()),
        policy=ONE_A_MINUTE,
    )
    answers = []
    for app in (middleware, limited_app("/")):
        client = TestClient(app)
        client.get("/")
        denied = client.get("/")
        names = ("content-type", "retry-after", "ratelimit-policy", "ratelimit")
        answers.append(
            (denied.status_code, [denied.headers[name] for name in names], denied.content)
        )
    assert 429 == answers[0][0]
    assert answers[0] == answers[1]


def test_while_redis_is_down_a_fail_open_limit_allows_and_advertises_nothing() -> None:
    """Nothing listens on the port: the request passes, without RateLimit headers."""
    limiter = RateLimiter("redis://127.0.0.1:1/0", timeout=0.5)  # port 1: nothing listens
    app = FastAPI()
    app.add_api_route("/", _ok, dependencies=[Depends(limit(ONE_A_MINUTE, limiter=limiter))])
    responses = [TestClient(app).get("/") for _ in range(2)]
    assert [200, 200] == [response.status_code for response in responses]
    assert [False, False] == ["ratelimit" in response.headers for response in responses]


def test_a_group_shares_one_quota_between_routes() -> None:
    """Two routes limited under one group draw on one quota; without it, each has its own."""
    grouped = TestClient(limited_app("/a", "/b", group="search"))
    separate = TestClient(limited_app("/a", "/b"))
    assert [200, 429] == [grouped.get(path).status_code for path in ("/a", "/b")]
    assert [200, 200] == [separate.get(path).status_code for path in ("/a", "/b")]


def test_a_group_named_like_a_route_has_a_quota_of_its_own() -> None:
    """`group="/a"` on /b never draws on the quota of the route /a."""
    limiter = RateLimiter("memory://", clock=FakeClock())
    app = FastAPI()
    app.add_api_route("/a", _ok, dependencies=[Depends(limit(ONE_A_MINUTE, limiter=limiter))])
    grouped = limit(ONE_A_MINUTE, limiter=limiter, group="/a")
    app.add_api_route("/b", _ok, dependencies=[Depends(grouped)])
    client = TestClient(app)
    assert [200, 200] == [client.get(path).status_code for path in ("/a", "/b")]


def test_routes_of_one_template_share_a_quota() -> None:
    """The quota belongs to the route (`/items/{id}`), not to each concrete path."""
    client = TestClient(limited_app("/items/{item_id}"))
    assert [200, 429] == [client.get(path).status_code for path in ("/items/1", "/items/2")]


def test_an_exempt_request_is_not_limited_and_gets_no_headers() -> None:
    """A key function returning EXEMPT lets every request through, without headers."""
    client = TestClient(limited_app("/", key=lambda scope: EXEMPT))
    responses = [client.get("/") for _ in range(3)]
    assert [200, 200, 200] == [response.status_code for response in responses]
    assert "ratelimit" not in responses[0].headers


def test_the_legacy_headers_can_be_added() -> None:
    """legacy_headers=True adds X-RateLimit-Limit, -Remaining and -Reset."""
    response = TestClient(limited_app("/", legacy_headers=True)).get("/")
    assert ("1", "0") == (
        response.headers["x-ratelimit-limit"],
        response.headers["x-ratelimit-remaining"],
    )


# At module level: FastAPI resolves the string annotations of an endpoint in its module.
five = limit(TokenBucket(5, 1.0), limiter=RateLimiter("memory://", clock=FakeClock()))


def test_the_endpoint_can_read_the_decision() -> None:
    """The dependency's value is the limiter's decision."""
    app = FastAPI()

    @app.get("/")
    async def remaining(decision: Annotated[Decision | None, Depends(five)]) -> int:
        assert decision is not None
        return decision.remaining

    client = TestClient(app)
    assert [4, 3] == [client.get("/").json() for _ in range(2)]


def test_without_the_problem_handlers_fastapi_still_answers_429_with_the_headers() -> None:
    """RateLimited is an HTTPException: FastAPI's own handler keeps status and headers."""
    limiter = RateLimiter("memory://", clock=FakeClock())
    app = FastAPI()
    app.add_api_route("/", _ok, dependencies=[Depends(limit(ONE_A_MINUTE, limiter=limiter))])
    client = TestClient(app)
    client.get("/")
    denied = client.get("/")
    assert (429, "60") == (denied.status_code, denied.headers["retry-after"])
    assert {"detail": "Rate limit exceeded."} == denied.json()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cost": 2}, "cost 2 can never be allowed"),
        ({"cost": -1}, "cost"),
        ({"group": ""}, "group must be a non-empty name"),
        ({"limiter": "redis://127.0.0.1:6379/0"}, "a RateLimiter"),
        ({"key": client_ip}, r"call the factory, e\.g\. key=client_ip\(\)"),
    ],
)
def test_a_dependency_that_could_never_work_is_refused_when_made(
    options: dict[str, Any], message: str
) -> None:
    """A dependency that would fail every request raises when it is made.

    A cost above the burst, a negative cost, an empty group, a URL for the limiter,
    an uncalled key factory (`key=client_ip`).
    """
    with pytest.raises(ConfigurationError, match=message):
        limit(ONE_A_MINUTE, **{"limiter": RateLimiter("memory://"), **options})


def test_a_dependency_needs_a_policy() -> None:
    """No policy is a configuration error naming the policy kinds."""
    with pytest.raises(ConfigurationError, match="policy"):
        limit(limiter=RateLimiter("memory://"))


@pytest.mark.parametrize(("retry_after", "header"), [(2.5, "3"), (0.0, None)])
def test_an_open_breaker_is_answered_503_problem_json(
    retry_after: float, header: str | None
) -> None:
    """CircuitOpenError becomes 503 with an RFC 9457 body and Retry-After, rounded up.

    No Retry-After when the breaker cannot say when it lets a trial call through (0).
    """
    app = FastAPI(exception_handlers=problem_handlers())

    @app.get("/")
    async def failing() -> None:
        raise CircuitOpenError("postgres", retry_after)

    response = TestClient(app).get("/")
    assert (503, header) == (response.status_code, response.headers.get("retry-after"))
    assert "application/problem+json" == response.headers["content-type"]
    assert {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The postgres dependency is failing; requests to it are paused.",
    } == json.loads(response.content)


def test_error_responses_describe_429_and_503() -> None:
    """Both by default, one when asked; another status is refused."""
    assert [429, 503] == list(error_responses())
    assert ["Retry-After", "RateLimit", "RateLimit-Policy"] == list(
        error_responses(429)[429]["headers"]
    )
    with pytest.raises(ValueError, match="not \\[404\\]"):
        error_responses(404)


async def test_install_runs_the_apps_lifespan_inside_the_healths() -> None:
    """Resources open before the app's own startup code and close after its shutdown code.

    The app's lifespan state reaches the requests; readiness passes in between.
    """
    events: list[str] = []

    class Resource:
        async def open(self) -> None:
            events.append("resource opened")

        async def aclose(self) -> None:
            events.append("resource closed")

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("app started")
        yield {"greeting": "hello"}
        events.append("app stopped")

    app = FastAPI(lifespan=own)
    health = Health()
    install(app, health, resources=[Resource()])

    @app.get("/")
    async def greet(request: Request) -> str:
        return str(request.state.greeting)

    with TestClient(app) as client:
        assert (200, "hello") == (client.get("/").status_code, client.get("/").json())
        assert 200 == client.get("/health/ready").status_code
    assert ["resource opened", "app started", "app stopped", "resource closed"] == events
    assert health.draining


def test_no_route_of_the_app_shadows_the_probes() -> None:
    """A catch-all route registered before install() does not answer /health/live."""
    app = FastAPI()
    app.add_api_route("/{path:path}", _ok)
    install(app, Health())
    with TestClient(app) as client:
        live, other = client.get("/health/live"), client.get("/anything")
    assert ("application/health+json", {"ok": True}) == (
        live.headers["content-type"],
        other.json(),
    )


def test_install_answers_rate_limited_as_problem_json() -> None:
    """install() registers problem_handlers(): a denial's body is RFC 9457."""
    limiter = RateLimiter("memory://", clock=FakeClock())
    app = FastAPI()
    install(app, Health())
    app.add_api_route("/", _ok, dependencies=[Depends(limit(ONE_A_MINUTE, limiter=limiter))])
    with TestClient(app) as client:
        client.get("/")
        denied = client.get("/")
    assert ("application/problem+json", 429) == (
        denied.headers["content-type"],
        denied.json()["status"],
    )


def test_rate_limited_carries_the_decision() -> None:
    """The exception keeps the limiter's decision for handlers of its own."""
    app = FastAPI()
    seen: list[Decision] = []

    async def record(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, RateLimited)
        seen.append(exc.decision)
        return await problem_handlers()[RateLimited](request, exc)

    app.add_exception_handler(RateLimited, record)
    limiter = RateLimiter("memory://", clock=FakeClock())
    app.add_api_route("/", _ok, dependencies=[Depends(limit(ONE_A_MINUTE, limiter=limiter))])
    client = TestClient(app)
    client.get("/")
    assert 429 == client.get("/").status_code
    assert [(False, 1)] == [(decision.allowed, decision.limit) for decision in seen]


def test_a_cached_endpoint_with_a_request_parameter_needs_a_key() -> None:
    """Without `key=`, a Request argument cannot be part of a key: the error says what to do."""
    cache = Cache("memory://")
    app = FastAPI()

    @app.get("/")
    @cache.cached(ttl=60)
    async def home(request: Request) -> str:
        return "home"

    with pytest.raises(ConfigurationError, match="give the cached function key="):
        TestClient(app).get("/")
