"""/metrics in multi-process mode merges what every worker process recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, cast

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from scalepy.health import Health
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.testing import asgi_request

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# One worker process: a readiness probe through the ASGI app, then exit.
_WORKER = """
import asyncio, os
from prometheus_client import CollectorRegistry
from scalepy.health import Check, Health
from scalepy.integrations.prometheus import PrometheusInstrumentation
from scalepy.testing import asgi_request

async def ok():
    return None

async def main():
    instrumentation = PrometheusInstrumentation(registry=CollectorRegistry())
    health = Health([Check(name="db", probe=ok)], instrumentation=instrumentation)
    health.mark_started()
    assert (await asgi_request(health.asgi, "/health/ready")).status == 200

asyncio.run(main())
print(os.getpid())
"""


def sample(body: bytes, name: str) -> float:
    """The value of the sample line starting with `name`."""
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} in:\n{body.decode()}")


@pytest.fixture
def worker_pids(tmp_path: Path) -> list[int]:
    """Run two worker processes writing to tmp_path in multi-process mode; their pids."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    return [
        int(
            subprocess.run(
                [sys.executable, "-c", _WORKER],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(2)
    ]


async def test_two_workers_are_merged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, worker_pids: list[int]
) -> None:
    """Durations add up over both workers; the status gauge sums live workers only."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app = Health(instrumentation=PrometheusInstrumentation(registry=CollectorRegistry())).asgi
    labels = '{scalepy_health_check_name="db",scalepy_health_check_status="pass"}'
    count = f"scalepy_health_check_duration_seconds_count{labels}"
    passing = f"scalepy_health_check_status{labels}"

    both = (await asgi_request(app, "/metrics")).body
    # mark_process_dead is unannotated; the cast lets mypy --strict call it.
    cast("Callable[[int], None]", mark_process_dead)(worker_pids[0])
    one = (await asgi_request(app, "/metrics")).body

    assert (2.0, 2.0) == (sample(both, count), sample(both, passing))
    assert (2.0, 1.0) == (sample(one, count), sample(one, passing))
