"""A task queue: at-least-once delivery under fenced leases, fast and observable.

```python
from scalepy.queue import Queue, Worker

queue = Queue("redis://localhost:6379/0", name="emails")


@queue.task(retries=5, timeout=30)
async def send_email(to: str) -> None: ...


job = await send_email.enqueue("a@example.com")  # producer
await Worker(queue, concurrency=32).run()  # worker; or: scalepy worker app:queue
```

A claimed job is leased to one worker and its lease renewed by a heartbeat
thread; a job whose worker died is re-queued by any live worker when its lease
expires; an outcome is recorded only under the claim's token, so exactly one
attempt's outcome wins. Retries back off with jitter, then jobs go to a
dead-letter set that can be re-driven or purged (kept a week by default).
Delayed, scheduled, periodic (cron), prioritised, unique and cancellable jobs;
results with a TTL.

Jobs live in Redis or Redis Cluster (the `redis` extra), shared by every process;
or, with `Queue("memory://")`, in this process only, with the same semantics and
workers in the same event loop (tests, scripts, single-process apps); or in a
`QueueStore` of your own, checked with `scalepy.testing.QueueStoreContract`.
"""

from typing import TYPE_CHECKING

from scalepy._lazy import lazy_exports
from scalepy.errors import JobCancelled as JobCancelled
from scalepy.errors import JobFailed as JobFailed
from scalepy.errors import JobNotFound as JobNotFound
from scalepy.errors import QueueError as QueueError
from scalepy.errors import ResultTimeout as ResultTimeout
from scalepy.queue._cron import Cron as Cron
from scalepy.queue._job import Job as Job
from scalepy.queue._job import JobContext as JobContext
from scalepy.queue._job import JobInfo as JobInfo
from scalepy.queue._job import JobStatus as JobStatus
from scalepy.queue._job import current_job as current_job
from scalepy.queue._job import worker_state as worker_state
from scalepy.queue._memory import MemoryQueueStore as MemoryQueueStore
from scalepy.queue._metrics import DEAD_LETTERED as DEAD_LETTERED
from scalepy.queue._metrics import FAILED as FAILED
from scalepy.queue._metrics import JOB_COUNT as JOB_COUNT
from scalepy.queue._metrics import LEASES_LOST as LEASES_LOST
from scalepy.queue._metrics import PROCESS_DURATION as PROCESS_DURATION
from scalepy.queue._metrics import PROCESSED as PROCESSED
from scalepy.queue._metrics import RETRIED as RETRIED
from scalepy.queue._metrics import SENT as SENT
from scalepy.queue._metrics import UNKNOWN_TASK as UNKNOWN_TASK
from scalepy.queue._metrics import WAIT_DURATION as WAIT_DURATION
from scalepy.queue._periodic import Periodic as Periodic
from scalepy.queue._queue import Queue as Queue
from scalepy.queue._queue import QueueStats as QueueStats
from scalepy.queue._runner import WorkerStatistics as WorkerStatistics
from scalepy.queue._store import MAX_CLAIM as MAX_CLAIM
from scalepy.queue._store import AnnouncingQueueStore as AnnouncingQueueStore
from scalepy.queue._store import Batch as Batch
from scalepy.queue._store import Claimed as Claimed
from scalepy.queue._store import ConnectingQueueStore as ConnectingQueueStore
from scalepy.queue._store import NewJob as NewJob
from scalepy.queue._store import OrderedAcksQueueStore as OrderedAcksQueueStore
from scalepy.queue._store import QueueStore as QueueStore
from scalepy.queue._store import SettledFeed as SettledFeed
from scalepy.queue._store import Settlement as Settlement
from scalepy.queue._store import StoredJob as StoredJob
from scalepy.queue._store import WakingQueueStore as WakingQueueStore
from scalepy.queue._task import Backoff as Backoff
from scalepy.queue._task import EnqueueOptions as EnqueueOptions
from scalepy.queue._task import Task as Task
from scalepy.queue._worker import Worker as Worker

__all__ = (
    "DEAD_LETTERED",
    "FAILED",
    "JOB_COUNT",
    "LEASES_LOST",
    "MAX_CLAIM",
    "PROCESSED",
    "PROCESS_DURATION",
    "RETRIED",
    "SENT",
    "UNKNOWN_TASK",
    "WAIT_DURATION",
    "AnnouncingQueueStore",
    "Backoff",
    "Batch",
    "Claimed",
    "ConnectingQueueStore",
    "Cron",
    "EnqueueOptions",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "JobStatus",
    "MemoryQueueStore",
    "NewJob",
    "OrderedAcksQueueStore",
    "Periodic",
    "Queue",
    "QueueError",
    "QueueStats",
    "QueueStore",
    "RedisQueueStore",
    "ResultTimeout",
    "SettledFeed",
    "Settlement",
    "StoredJob",
    "Task",
    "WakingQueueStore",
    "Worker",
    "WorkerStatistics",
    "current_job",
    "worker_state",
)

if TYPE_CHECKING:
    from scalepy.queue._redis import RedisQueueStore as RedisQueueStore

# Needing the redis extra: imported on first use, so this package stays stdlib-only.
__getattr__ = lazy_exports(
    __name__,
    {
        "RedisQueueStore": "scalepy.queue._redis",
    },
    requires="scalepy.backends.redis",
)
