"""weather_app.py's tests, against a real Redis: pytest test_weather_app.py."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest
import weather_app
from starlette.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The app, inside its lifespan, with keys no other test run shares."""
    namespace = f"test-{uuid.uuid4().hex}"
    with TestClient(weather_app.create_app(namespace=namespace)) as client:
        yield client


def test_forecast_is_cached(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two requests for a city make one upstream call, and get one answer."""
    calls: list[str] = []

    async def upstream(city: str) -> dict[str, object]:
        calls.append(city)
        return {"city": city, "sky": "cloudy"}

    monkeypatch.setattr(weather_app, "fetch_forecast", upstream)
    first = client.get("/forecast/oslo")
    second = client.get("/forecast/oslo")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"city": "oslo", "sky": "cloudy"}
    assert calls == ["oslo"]


def test_sixth_request_of_a_burst_is_refused(client: TestClient) -> None:
    """5 answers, then 429 with the seconds until the next token."""
    statuses = [client.get("/forecast/lima").status_code for _ in range(5)]
    assert statuses == [200] * 5
    refused = client.get("/forecast/lima")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "12"  # 5 a minute: one per 12 s
    assert refused.headers["ratelimit-policy"] == '"per-client";q=5;w=60'


def test_ready_while_redis_answers(client: TestClient) -> None:
    """Readiness passes while Redis answers; probes are never rate limited."""
    statuses = {client.get("/health/ready").status_code for _ in range(10)}
    assert statuses == {200}
