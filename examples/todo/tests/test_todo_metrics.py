"""The app's own request metric, and `TODO_METRICS_ADDRESS` on the app and the worker."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import httpx
import pytest
from tests.support.redis_server import free_port
from todo_support import WorkerProcess, write_headers

from todo.app import create_app
from todo.settings import Settings, SettingsError

if TYPE_CHECKING:
    from pathlib import Path


def _count(route: str, method: str, status: int) -> str:
    return (
        f'http_server_request_duration_seconds_count{{http_request_method="{method}",'
        f'http_response_status_code="{status}",http_route="{route}"}}'
    )


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Two ids share one route series; a path no route matched has an empty route."""
    created = await client.post("/todos", json={"title": "m"}, headers=write_headers(settings))
    await client.get(created.json()["url"])
    await client.get("/todos/999999")
    await client.get("/nowhere")
    await client.request("BREW", "/todos")
    text = (await client.get("/metrics")).text
    for series in (
        _count("/todos", "POST", 201) + " 1.0",
        _count("/todos/{todo_id}", "GET", 200) + " 1.0",
        _count("/todos/{todo_id}", "GET", 404) + " 1.0",
        _count("", "GET", 404) + " 1.0",
        _count("/todos", "_OTHER", 405) + " 1.0",
    ):
        assert series in text, series


async def test_the_app_serves_its_metrics_on_the_metrics_address(settings: Settings) -> None:
    """Inside the lifespan the listener answers with the same registry; after it, nothing."""
    address = f"127.0.0.1:{free_port()}"
    app = create_app(dataclasses.replace(settings, metrics_address=address))
    async with httpx.AsyncClient() as client:
        async with app.router.lifespan_context(app):
            text = (await client.get(f"http://{address}/metrics")).text
            assert 'scalepy_pool_connection_max{scalepy_pool_name="primary"}' in text
            assert "scalepy_health_event_loop_lag_seconds" in text
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://{address}/metrics")


def test_the_worker_serves_its_metrics_on_the_metrics_address(
    settings: Settings, tmp_path: Path
) -> None:
    """The worker has no other HTTP server: its pools and queue are scraped here."""
    address = f"127.0.0.1:{free_port()}"
    worker_settings = dataclasses.replace(settings, metrics_address=address)
    with WorkerProcess(worker_settings, tmp_path / "worker.log"):
        text = httpx.get(f"http://{address}/metrics").text
        assert 'scalepy_pool_connection_max{scalepy_pool_name="primary"}' in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}/metrics")


@pytest.mark.parametrize("value", ["9100", "host:", ":9100", "host:99999", "host:port"])
def test_a_bad_metrics_address_names_the_variable(value: str) -> None:
    """The process refuses to start with a message naming TODO_METRICS_ADDRESS."""
    with pytest.raises(SettingsError, match="TODO_METRICS_ADDRESS"):
        Settings.from_env({"TODO_METRICS_ADDRESS": value})
