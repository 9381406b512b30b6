"""No health body shows a secret or an internal address, whatever the failing driver says.

Checks fail with messages holding each form a secret takes (a URL password with
`/`, `Authorization: Basic`, `X-Api-Key:`, `sig=` and `token=` query parameters, a
keyword DSN), and a real Redis refuses a wrong password. Every endpoint is asked,
the details with and without access; none may carry any of the secrets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.backends.redis import RedisClient
from scalepy.health import Check, Health, redis_check

# The internal options Health hands its ASGI app: their repr must hide the tokens.
from scalepy.health._asgi import HttpOptions
from scalepy.testing import FakeClock, asgi_request
from tests.health.probes import Probe
from tests.health.schema import validate_health_json
from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SERVER_PASSWORD = "r1ght/p@ss"
WRONG_PASSWORD = "wr0ng/p@ss:w%rd"
FAILURES = {
    "url": ConnectionError("connect to redis://app:pa/ss-w0rd@10.0.0.7:6379/0 failed"),
    "basic": PermissionError("401 with Authorization: Basic dXNlcjpodW50ZXIy"),
    "apikey": PermissionError("rejected X-Api-Key: k3y-v4lue-9"),
    "query": OSError("GET https://api.internal/v1?sig=s1gn4ture&token=t0k3n-7 timed out"),
    "dsn": ConnectionError("host=db.internal password='hunter2 x' dbname=app: refused"),
}
SECRETS = (
    "pa/ss-w0rd",
    "10.0.0.7",
    "dXNlcjpodW50ZXIy",
    "k3y-v4lue-9",
    "s1gn4ture",
    "t0k3n-7",
    "api.internal",
    "hunter2",
    "db.internal",
    "p@ss",
    "WRONGPASS",
)
PATHS = ("/health", "/health/live", "/health/ready", "/health/startup")


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that requires SERVER_PASSWORD."""
    with RedisServer(tmp_path, "--requirepass", SERVER_PASSWORD) as server:
        yield server


def failing_health(client: RedisClient, **options: Any) -> Health:
    """A started health whose checks all fail: one per secret form, and the real Redis."""
    checks = [Check(name=name, probe=Probe(error=error)) for name, error in FAILURES.items()]
    checks.append(redis_check(client, timeout=2.0))
    health = Health(checks, clock=FakeClock(), **options)
    health.mark_started()
    return health


async def bodies(health: Health, headers: list[tuple[str, str]] | None = None) -> str:
    """Every endpoint's body, concatenated."""
    answers = [await asgi_request(health.asgi, path, headers=headers or []) for path in PATHS]
    return "\n".join(answer.body.decode() for answer in answers)


@pytest.mark.parametrize(
    ("options", "headers"),
    [
        ({}, None),
        ({"public_details": True}, None),
        ({"details_token": "let-me-see"}, [("authorization", "Bearer let-me-see")]),
    ],
    ids=["default", "public-details", "token"],
)
async def test_no_body_carries_a_secret(
    locked_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
    headers: list[tuple[str, str]] | None,
) -> None:
    """Whoever asks, no body holds a password, token, signature, key or internal address."""
    url = f"redis://app:{WRONG_PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    async with RedisClient.from_url(url) as client:
        health = failing_health(client, **options)
        with caplog.at_level(logging.WARNING, logger="scalepy.health"):
            text = await bodies(health, headers)

    found = [secret for secret in (*SECRETS, str(locked_redis.port)) if secret in text]
    assert [] == found
    assert [] == [
        secret for secret in (WRONG_PASSWORD, "pa/ss-w0rd", "hunter2") if secret in caplog.text
    ]


async def test_detailed_failures_show_the_cause_class_only(locked_redis: RedisServer) -> None:
    """With details on, each failed check shows its exception's class name, nothing more."""
    url = f"redis://:{WRONG_PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    async with RedisClient.from_url(url) as client:
        health = failing_health(client, public_details=True)
        response = await asgi_request(health.asgi, "/health")

    body = validate_health_json(response.body, details=True)
    outputs = {key: entries[0].get("output") for key, entries in body["checks"].items()}
    assert {
        "url": "ConnectionError",
        "basic": "PermissionError",
        "apikey": "PermissionError",
        "query": "OSError",
        "dsn": "ConnectionError",
        "redis:responseTime": "BackendCommandError",
    } == outputs
    assert "componentId" not in body["checks"]["redis:responseTime"][0]


async def test_failing_check_is_logged_once_with_secrets_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The driver's text goes to the log (masked) when a check starts failing, not every run."""
    clock = FakeClock()
    health = Health(
        [Check(name="search", probe=Probe(error=FAILURES["url"]))], clock=clock, fail_ttl=1.0
    )
    health.mark_started()
    with caplog.at_level(logging.WARNING, logger="scalepy.health"):
        for _ in range(3):
            await health.readiness()
            clock.advance(2.0)

    assert [
        "health check 'search' fails: ConnectionError: "
        "connect to redis://app:***@10.0.0.7:6379/0 failed"
    ] == [record.getMessage() for record in caplog.records]


HYPHENATED = {
    "X-Auth-Token: 4uth-t0k3n-1": "X-Auth-Token: ***",
    "X-Vault-Token: hvs.v4ult-2": "X-Vault-Token: ***",
    "api-token=4pi-t0k3n-3": "api-token=***",
    "client-secret=cl13nt-s3cr3t-4": "client-secret=***",
    "GET https://b.example/o?X-Goog-Signature=g00g-s1g-5&x=1": (
        "GET https://b.example/o?X-Goog-Signature=***&x=1"
    ),
    "GET https://b.example/o?X-Amz-Security-Token=4mz-t0k3n-6": (
        "GET https://b.example/o?X-Amz-Security-Token=***"
    ),
    "Set-Cookie: session=c00k13-7": "Set-Cookie: ***",
    "private_key=pr1v4t3-k3y-8": "private_key=***",
}


@pytest.mark.parametrize(("text", "expected"), list(HYPHENATED.items()), ids=list(range(8)))
async def test_hyphenated_secret_names_are_masked_in_the_log(
    caplog: pytest.LogCaptureFixture, text: str, expected: str
) -> None:
    """Secret-named headers and parameters spelled with hyphens are masked as the others are."""
    health = Health(
        [Check(name="api", probe=Probe(error=PermissionError(text)))], clock=FakeClock()
    )
    health.mark_started()
    with caplog.at_level(logging.WARNING, logger="scalepy.health"):
        await health.readiness()

    assert [f"health check 'api' fails: PermissionError: {expected}"] == [
        record.getMessage() for record in caplog.records
    ]


def test_the_http_options_repr_hides_the_tokens() -> None:
    """An error reporter capturing a frame's locals (Sentry does by default) shows no token.

    `HealthApp._details` holds the options in a local while it calls the user's
    `details_allowed` predicate, which may raise.
    """
    options = HttpOptions(details_token="d3t41ls-t0k3n", drain_token="dr41n-t0k3n")
    shown = repr(options)
    assert [] == [token for token in ("d3t41ls-t0k3n", "dr41n-t0k3n") if token in shown]
