"""Pool metrics through Prometheus with two worker processes (multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import mark_process_dead

from scalepy.integrations.prometheus import exposition_registry

if TYPE_CHECKING:
    from collections.abc import Callable

    import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_two_worker_processes_add_up(
    tmp_path: Path, postgres_dsn: str, app_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker's pool is counted once: sizes sum over live workers, counters add up."""
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.pools.metrics_process", postgres_dsn, app_name],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        pids = []
        for worker in workers:  # each prints its pid once its pool is in the state described
            assert worker.stdout is not None
            pids.append(int(worker.stdout.readline()))
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        merged = exposition_registry(CollectorRegistry())
        pool = {"scalepy_pool_name": "primary"}

        def value(name: str, **labels: str) -> float | None:
            return merged.get_sample_value(name, {**pool, **labels})

        assert [2.0, 2.0, 4.0, 4.0, 0.0] == [
            value("scalepy_pool_connection_count", scalepy_pool_connection_state="used"),
            value("scalepy_pool_connection_count", scalepy_pool_connection_state="idle"),
            value("scalepy_pool_connection_max"),
            value("scalepy_pool_connection_idle_min"),
            value("scalepy_pool_connection_pending_requests"),
        ]
        assert [2.0, 4.0, 4.0, 2.0] == [
            value("scalepy_pool_connection_timeouts_total"),
            value("scalepy_pool_connection_create_time_seconds_count"),
            value("scalepy_pool_connection_wait_time_seconds_count"),
            value("scalepy_pool_connection_use_time_seconds_count"),
        ]
    finally:
        for worker in workers:
            worker.communicate("done\n", timeout=30)
    assert [0, 0] == [worker.returncode for worker in workers]
    # mark_process_dead is unannotated; the cast lets mypy --strict call it.
    for pid in pids:
        cast("Callable[[int], None]", mark_process_dead)(pid)
    used = merged.get_sample_value(
        "scalepy_pool_connection_count", {**pool, "scalepy_pool_connection_state": "used"}
    )
    assert used in (None, 0.0)  # the workers closed their pools and are gone
