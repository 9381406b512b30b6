"""Chaos: real `scalepy worker` processes killed, paused and stopped while they hold jobs.

The workers run `tests.queue.chaos_app`, whose jobs count their runs in Redis. The
test process only enqueues, does things to the workers, and reads Redis back.
Waiting on other processes is polling Redis (or a log file) with a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from scalepy.queue import JobStatus, Queue
from tests.queue.conftest import WAIT, redis_store
from tests.support.polling import eventually

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()


class Workers:
    """Worker processes of one queue, each logging to its own file; all killed at the end."""

    def __init__(self, url: str, name: str, directory: Path) -> None:
        self.url, self.name, self.directory = url, name, directory
        self.processes: list[subprocess.Popen[bytes]] = []
        self.cron = ""

    def start(self, *, concurrency: int = 8, lease: float = 0.5) -> subprocess.Popen[bytes]:
        """Start one `scalepy worker` process (it may still be importing when this returns)."""
        env = os.environ | {
            "SCALEPY_CHAOS_URL": self.url,
            "SCALEPY_CHAOS_QUEUE": self.name,
            "SCALEPY_CHAOS_CRON": self.cron,
        }
        command = [
            sys.executable, "-m", "scalepy.cli", "worker", "tests.queue.chaos_app:queue",
            "--concurrency", str(concurrency), "--lease", str(lease), "--status-interval", "0",
        ]  # fmt: skip
        log = (self.directory / f"worker-{len(self.processes)}.log").open("wb")
        with log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        self.processes.append(process)
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        """What the process logged so far."""
        index = self.processes.index(process)
        return (self.directory / f"worker-{index}.log").read_text(errors="replace")

    async def ready(self, process: subprocess.Popen[bytes]) -> None:
        """Wait until the process logs that its worker runs."""

        async def started() -> bool:
            assert process.poll() is None, self.log(process)
            return "worker for queue" in self.log(process)

        await eventually(started, within=30)

    async def start_ready(self, count: int = 1, **options: Any) -> list[subprocess.Popen[bytes]]:
        """Start `count` workers and wait until all of them run."""
        started = [self.start(**options) for _ in range(count)]
        for process in started:
            await self.ready(process)
        return started

    def kill_all(self) -> None:
        """SIGKILL every process still running and reap it."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def workers(queue_url: str, queue_name: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes for the test's queue, killed afterwards."""
    group = Workers(queue_url, queue_name, tmp_path)
    yield group
    group.kill_all()


@pytest.fixture
async def producer(queue_url: str, queue_name: str) -> AsyncIterator[Queue]:
    """The test's side of the chaos queue: stubs of the worker's tasks, to enqueue them."""
    async with Queue(queue_url, name=queue_name) as queue:
        for name in ("work", "slow", "blocking", "tick"):
            queue.task(name=name, retries=20)(_stub)
        yield queue


async def _stub(*args: Any) -> Any:
    """Stands in for a task that only the worker processes run."""


async def runs(queue: Queue, job_ids: list[str]) -> dict[str, int]:
    """How many times each job ran (counted by the job itself)."""
    base = redis_store(queue).base
    counts = await queue.client.execute("MGET", *(f"{base}:runs:{job_id}" for job_id in job_ids))
    return {job_id: int(count or 0) for job_id, count in zip(job_ids, counts, strict=True)}


async def starts(queue: Queue, job_id: str) -> list[tuple[int, float]]:
    """Each start of the job: the pid that ran it and when (Unix time)."""
    entries = await queue.client.execute(
        "LRANGE", f"{redis_store(queue).base}:starts:{job_id}", 0, -1
    )
    return [(int(pid), float(at)) for pid, at in (entry.split() for entry in entries)]


async def held_by(queue: Queue, pid: int) -> list[str]:
    """The jobs whose lease the worker process `pid` holds."""
    base = redis_store(queue).base
    leased = await queue.client.execute("ZRANGE", f"{base}:leases", 0, -1)
    holders = [
        await queue.client.execute("HGET", f"{base}:job:{job_id.decode()}", "worker")
        for job_id in leased
    ]
    mine = f"{HOST}:{pid}".encode()
    return [
        job_id.decode() for job_id, holder in zip(leased, holders, strict=True) if holder == mine
    ]


async def settled(queue: Queue) -> bool:
    """Whether no job is waiting or running any more."""
    stats = await queue.stats()
    return stats.queued == stats.scheduled == stats.active == 0


async def test_sigkill_loses_no_job_and_reruns_only_killed_attempts(
    producer: Queue, workers: Workers
) -> None:
    """SIGKILL workers at random: no job is lost, and only killed attempts run again.

    Every job ends completed or dead, none stays leased, and a job runs at most once
    more than the number of times a worker holding it was killed.
    """
    rng = random.Random(7)
    alive = await workers.start_ready(3, concurrency=8, lease=0.5)
    jobs = await producer.tasks["work"].enqueue_many([()] * 500)
    ids = [job.id for job in jobs]
    kills: dict[str, int] = dict.fromkeys(ids, 0)
    for _ in range(6):
        await asyncio.sleep(rng.uniform(0.05, 0.3))  # the chaos schedule, not synchronisation
        victim = alive.pop(rng.randrange(len(alive)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        for job_id in await held_by(producer, victim.pid):
            kills[job_id] += 1
        alive.append(workers.start())
    await eventually(lambda: settled(producer), within=60)
    statuses = {await producer.job(job_id).status() for job_id in ids}
    assert statuses <= {JobStatus.COMPLETED, JobStatus.DEAD}
    assert 0 == await producer.client.execute("ZCARD", f"{redis_store(producer).base}:leases")
    counted = await runs(producer, ids)
    assert {} == {
        job_id: (n, kills[job_id])
        for job_id, n in counted.items()
        if not 1 <= n <= 1 + kills[job_id]
    }
    assert sum(kills.values()) > 0  # the test did interrupt jobs


async def test_a_paused_worker_loses_its_job_and_its_completion_is_refused(
    producer: Queue, workers: Workers
) -> None:
    """SIGSTOP past the lease: the job re-runs elsewhere, and the paused worker loses.

    After SIGCONT the first worker's outcome is refused and the second run's result stands.
    """
    first, second = await workers.start_ready(2, concurrency=2, lease=0.5)
    job = await producer.tasks["slow"].enqueue(1.0)

    async def started(count: int) -> bool:
        return len(await starts(producer, job.id)) == count

    await eventually(lambda: started(1))
    ((paused_pid, _),) = await starts(producer, job.id)
    paused = first if first.pid == paused_pid else second
    paused.send_signal(signal.SIGSTOP)
    try:
        await eventually(lambda: started(2))
    finally:
        paused.send_signal(signal.SIGCONT)
    other_pid = (await starts(producer, job.id))[1][0]
    assert other_pid != paused_pid
    assert other_pid == await job.result(timeout=WAIT)

    async def refused() -> bool:
        return "lease lost" in workers.log(paused)

    await eventually(refused)
    assert other_pid == await job.result(timeout=WAIT)  # the late outcome changed nothing
    assert {job.id: 2} == await runs(producer, [job.id])


async def test_sigterm_hands_unfinished_jobs_to_another_worker_within_a_second(
    producer: Queue, workers: Workers
) -> None:
    """A worker stopping on SIGTERM returns its jobs at once: they restart elsewhere in < 1 s."""
    (leaving,) = await workers.start_ready(1, concurrency=4, lease=10.0)
    jobs = await producer.tasks["slow"].enqueue_many([(30.0,)] * 3)

    async def all_started(count: int) -> bool:
        counts = [len(await starts(producer, job.id)) for job in jobs]
        return min(counts) >= count

    await eventually(lambda: all_started(1))
    await workers.start_ready(1, concurrency=4, lease=10.0)
    stopped_at = time.time()
    leaving.send_signal(signal.SIGTERM)
    await eventually(lambda: all_started(2))
    restarts = [(await starts(producer, job.id))[1] for job in jobs]
    assert all(pid != leaving.pid for pid, _ in restarts)
    assert max(at for _, at in restarts) - stopped_at < 1.0
    assert 0 == await asyncio.to_thread(leaving.wait, WAIT)
    assert "stopped:" in workers.log(leaving)


async def test_a_job_running_ten_leases_runs_once(producer: Queue, workers: Workers) -> None:
    """Heartbeats keep renewing a job that runs 10x its lease; nobody else takes it."""
    await workers.start_ready(2, concurrency=2, lease=0.2)
    job = await producer.tasks["slow"].enqueue(2.0)
    await job.result(timeout=WAIT)
    assert {job.id: 1} == await runs(producer, [job.id])


async def test_a_job_blocking_its_event_loop_for_two_leases_runs_once(
    producer: Queue, workers: Workers
) -> None:
    """A CPU-bound job holding the loop (and the GIL, in slices) keeps its lease."""
    await workers.start_ready(2, concurrency=2, lease=0.5)
    job = await producer.tasks["blocking"].enqueue(1.0)
    await job.result(timeout=WAIT)
    assert {job.id: 1} == await runs(producer, [job.id])


async def test_three_workers_fire_a_cron_schedule_once_per_fire(
    producer: Queue, workers: Workers
) -> None:
    """Every worker runs the every-second schedule; each fire makes exactly one job."""
    workers.cron = "* * * * * *"
    await workers.start_ready(3, concurrency=2)
    base = redis_store(producer).base

    async def cron_jobs() -> list[str]:
        keys = await producer.client.execute("EVAL", _KEYS, 1, base, f"{base}:job:cron-*")
        return sorted(key.decode().rpartition(":")[2] for key in keys)

    async def ran(count: int) -> bool:
        counted = await runs(producer, await cron_jobs() or ["none"])
        return sum(counted.values()) >= count

    await eventually(lambda: ran(3))
    workers.kill_all()
    fired = await cron_jobs()
    counted = await runs(producer, fired)
    assert set(counted.values()) <= {0, 1}  # 0: enqueued, not run yet when the workers died
    assert sum(counted.values()) >= 3
    fires = sorted(int(job_id.rpartition("-")[2]) for job_id in fired)
    assert all(later - earlier == 1000 for earlier, later in itertools.pairwise(fires))


_KEYS = "return redis.call('KEYS', ARGV[1])"
