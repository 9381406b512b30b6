"""The `scalepy` command: loading the app, `worker`, `queue stats|dead|requeue|purge`, errors."""

from __future__ import annotations

import asyncio
import logging
import os
import runpy
import signal
import sys
import types
from typing import TYPE_CHECKING

import pytest

from scalepy.cli import load_queue, main
from scalepy.errors import ConfigurationError
from scalepy.queue import Queue, worker_state
from tests.support.redis_server import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

APP = "scalepy_cli_test_app"


@pytest.fixture
def app(queue_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Queue]:
    """A module `scalepy_cli_test_app` whose `queue` has a failing and a working task.

    Each command closes the queue it ran on, as a process exiting would, so the
    module builds a new one each time its `queue` is read.
    """

    def build() -> Queue:
        queue = Queue(queue_url, name=queue_name)

        @queue.task(name="fail", retries=0)
        async def fail() -> None:
            raise RuntimeError("always")

        @queue.task(name="ok")
        async def ok() -> None:
            await asyncio.sleep(0.05)  # a few status lines (every 0.01 s) go out meanwhile
            os.kill(os.getpid(), signal.SIGTERM)  # the worker command stops on it, gracefully

        return queue

    def attribute(name: str) -> object:
        if name == "queue":
            return build()
        raise AttributeError(f"module {APP!r} has no attribute {name!r}")

    module = types.ModuleType(APP)
    module.__getattr__ = attribute  # type: ignore[method-assign]
    module.other = object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, APP, module)
    reference = Queue(queue_url, name=queue_name)
    yield reference
    asyncio.run(reference.aclose())


def enqueue(queue: Queue, task: str, count: int = 1) -> None:
    """Enqueue `count` jobs of `task` from a fresh event loop (the CLI runs its own)."""

    async def send() -> None:
        assert queue.config is not None
        async with Queue(queue.config, name=queue.name) as producer:
            stub = producer.task(name=task, retries=0)(asyncio.sleep)
            await stub.enqueue_many([()] * count)

    asyncio.run(send())


def test_the_worker_runs_jobs_until_sigterm(
    app: Queue, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """`scalepy worker` runs jobs, logs a status line, and stops gracefully on SIGTERM."""
    caplog.set_level(logging.INFO, logger="scalepy.cli")
    enqueue(app, "fail", 2)
    enqueue(app, "ok")
    argv = ["--log-level", "debug", "worker", f"{APP}:queue", "--concurrency", "1", "--lease", "1"]
    assert 0 == main([*argv, "--status-interval", "0.01"])
    assert 0 == main(["queue", "stats", f"{APP}:queue"])
    out = capsys.readouterr().out
    assert f"queue {app.name!r}" in out
    assert "dead               2" in out
    messages = [record.getMessage() for record in caplog.records if record.name == "scalepy.cli"]
    assert any("jobs/s | queue: " in message for message in messages)
    assert "SIGTERM: stopping" in messages


@pytest.mark.parametrize(
    ("option", "loop_module"), [([], "uvloop"), (["--loop", "asyncio"], "asyncio")]
)
def test_the_worker_runs_on_uvloop_when_it_is_installed(
    queue_url: str,
    queue_name: str,
    monkeypatch: pytest.MonkeyPatch,
    option: list[str],
    loop_module: str,
) -> None:
    """The default (`--loop auto`) runs jobs on uvloop, as uvicorn does; `asyncio` opts out.

    asyncio's loop allocates 256 KiB per socket read, which grows a worker's heap.
    """
    loops: list[str] = []

    def build() -> Queue:
        queue = Queue(queue_url, name=queue_name)

        @queue.task(name="which")
        async def which() -> None:
            loops.append(type(asyncio.get_running_loop()).__module__.split(".")[0])
            os.kill(os.getpid(), signal.SIGTERM)

        return queue

    module = types.ModuleType("scalepy_cli_loop_app")
    module.__getattr__ = lambda name: build()  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "scalepy_cli_loop_app", module)
    enqueue(build(), "which")
    assert 0 == main([*option, "worker", "scalepy_cli_loop_app:queue", "--status-interval", "0"])
    assert [loop_module] == loops


def test_dead_jobs_are_listed_and_re_driven(app: Queue, capsys: pytest.CaptureFixture[str]) -> None:
    """`queue dead` lists dead jobs with their error; `queue requeue` re-drives them."""
    assert 0 == main(["queue", "dead", f"{APP}:queue"])
    assert "no dead job" in capsys.readouterr().out
    enqueue(app, "fail", 3)
    enqueue(app, "ok")
    main(["worker", f"{APP}:queue", "--status-interval", "0"])
    assert 0 == main(["queue", "dead", f"{APP}:queue", "--limit", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert 2 == len(lines)
    assert all("fail  attempts=1  RuntimeError: always" in line for line in lines)
    job_id = lines[0].split()[0]
    assert 0 == main(["queue", "requeue", f"{APP}:queue", job_id])
    assert "re-queued 1 job\n" == capsys.readouterr().out
    assert 0 == main(["queue", "requeue", f"{APP}:queue", "--all"])
    assert "re-queued 2 jobs\n" == capsys.readouterr().out


@pytest.mark.parametrize("arguments", [[], ["some-id", "--all"]])
def test_requeue_needs_ids_or_all(
    app: Queue, arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`queue requeue` takes job ids or --all, not both and not neither."""
    assert 2 == main(["queue", "requeue", f"{APP}:queue", *arguments])
    assert "give JOB_IDs or --all" in capsys.readouterr().err


def test_dead_jobs_are_purged(app: Queue, capsys: pytest.CaptureFixture[str]) -> None:
    """`queue purge` deletes the given dead jobs, those old enough, or with --yes any."""
    enqueue(app, "fail", 4)
    enqueue(app, "ok")
    main(["worker", f"{APP}:queue", "--status-interval", "0"])
    main(["queue", "dead", f"{APP}:queue"])
    job_id = capsys.readouterr().out.split()[0]
    purge = ["queue", "purge", f"{APP}:queue"]
    assert 0 == main([*purge, "--older-than", "3600"])
    assert "purged 0 dead jobs, dead 3600 s or longer\n" == capsys.readouterr().out
    assert 0 == main([*purge, job_id, "unknown"])
    assert "purged 1 dead job\n" == capsys.readouterr().out
    assert 0 == main([*purge, "--yes", "--limit", "2"])
    assert "purged 2 dead jobs\n" == capsys.readouterr().out
    assert 0 == main([*purge, "--older-than", "0"])
    assert "purged 1 dead job, dead 0 s or longer\n" == capsys.readouterr().out
    assert 0 == main(["queue", "stats", f"{APP}:queue"])
    assert "dead               0" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        ([], 2, "give JOB_IDs, --older-than SECONDS, or --yes for every dead job"),
        (["--limit", "5"], 2, "give JOB_IDs, --older-than SECONDS, or --yes"),
        (["some-id", "--older-than", "60"], 2, "give JOB_IDs or --older-than (not both)"),
        (["--yes", "--limit", "0"], 1, "limit must be an int >= 1"),
        (["--older-than", "-1"], 1, "older_than must be a finite number >= 0"),
    ],
)
def test_purge_refuses_to_guess(
    app: Queue,
    arguments: list[str],
    status: int,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With no ids, --older-than nor --yes nothing is purged; bad values are reported."""
    assert status == main(["queue", "purge", f"{APP}:queue", *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no-colon", "expected module:attribute"),
        ("scalepy_no_such_module:queue", "No module named"),
        (f"{APP}:missing", "has no attribute"),
        (f"{APP}:other", "is a object, not a scalepy.queue.Queue"),
    ],
)
def test_a_bad_app_reference_exits_with_2(
    app: Queue, reference: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An app that cannot be loaded is reported, with exit status 2."""
    assert 2 == main(["queue", "stats", reference])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["worker"], ["queue", "stats"], ["queue", "dead"]])
def test_a_memory_queue_is_refused(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A memory queue lives in one process: another process's command exits with 2."""
    module = types.ModuleType(APP)
    module.queue = Queue("memory://")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, APP, module)
    assert 2 == main([*command, f"{APP}:queue"])
    assert "is a memory:// queue: its jobs live only in the process" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="redis://"):
        load_queue(f"{APP}:queue")


def test_an_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad --log-level is refused by the parser (exit status 2), not a traceback."""
    with pytest.raises(SystemExit) as exited:
        main(["--log-level", "chatty", "queue", "stats", f"{APP}:queue"])
    assert 2 == exited.value.code
    assert "invalid choice: 'CHATTY'" in capsys.readouterr().err


def test_an_unreachable_redis_exits_with_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis error is reported on one line, with exit status 1."""
    module = types.ModuleType(APP)
    module.queue = Queue(f"redis://127.0.0.1:{free_port()}/0?connect_timeout=0.2")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, APP, module)
    assert 1 == main(["queue", "stats", f"{APP}:queue"])
    assert capsys.readouterr().err.startswith("scalepy: ")


def test_load_queue_puts_the_current_directory_on_the_path(
    app: Queue, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    """Apps are importable from the directory the command runs in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [path for path in sys.path if path != os.getcwd()])
    assert app.name == load_queue(f"{APP}:queue").name
    assert os.getcwd() == sys.path[0]


def test_the_module_runs_as_a_program(app: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m scalepy.cli` is the same command, exiting with its status."""
    monkeypatch.setattr(sys, "argv", ["scalepy", "queue", "stats", f"{APP}:queue"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("scalepy.cli", run_name="__main__")
    assert 0 == exited.value.code


HOOKS = "scalepy_cli_test_hooks"


class HookState:
    """What a worker's startup hook opens for its tasks (say, a PoolManager)."""


@pytest.fixture
def hooks(queue_url: str, queue_name: str, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A module `scalepy_cli_test_hooks` with a queue, a `startup` and a `shutdown` hook.

    Its task reads the worker's state; what each did is appended to the list returned.
    """
    events: list[object] = []
    state = HookState()

    async def startup() -> HookState:
        events.append("startup")
        return state

    async def shutdown(given: HookState) -> None:
        events.append(("shutdown", given is state))

    queue = Queue(queue_url, name=queue_name)

    @queue.task(name="read_state", retries=0)
    async def read_state() -> None:
        events.append(("task", worker_state(HookState) is state))
        os.kill(os.getpid(), signal.SIGTERM)  # the worker command stops on it, gracefully

    module = types.ModuleType(HOOKS)
    module.queue = queue  # type: ignore[attr-defined]
    module.startup = startup  # type: ignore[attr-defined]
    module.shutdown = shutdown  # type: ignore[attr-defined]
    module.plain = lambda: state  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, HOOKS, module)
    return events


def test_the_worker_runs_startup_and_shutdown_hooks(hooks: list[object]) -> None:
    """`--startup`'s result is the state tasks read; `--shutdown` gets it once stopped."""
    queue = sys.modules[HOOKS].queue
    enqueue(queue, "read_state")
    argv = ["worker", f"{HOOKS}:queue", "--startup", f"{HOOKS}:startup"]
    assert 0 == main([*argv, "--shutdown", f"{HOOKS}:shutdown", "--status-interval", "0"])
    assert ["startup", ("task", True), ("shutdown", True)] == hooks


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ("scalepy_no_such_module:startup", "cannot load scalepy_no_such_module:startup"),
        (f"{HOOKS}:missing", "has no attribute 'missing'"),
        (f"{HOOKS}:plain", "is a function, not an async callable"),
        ("startup", "expected module:attribute"),
    ],
)
@pytest.mark.parametrize("option", ["--startup", "--shutdown"])
def test_a_bad_hook_is_a_usage_error(
    hooks: list[object], option: str, hook: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hook that cannot be loaded, or is not async, exits with 2 before any job runs."""
    with pytest.raises(SystemExit) as exited:
        main(["worker", f"{HOOKS}:queue", option, hook])
    assert 2 == exited.value.code
    assert message in capsys.readouterr().err
    assert [] == hooks
