"""scripts/demo.sh: arguments are checked before any setup; nothing it starts outlives it.

The full tour runs in CI through `scripts/demo.sh --check` (scripts/test.sh); these tests
cover what a tour cannot: bad arguments, and the cleanup after a signal. They run the
single-process mode (no nginx), which has the same supervision as the full stack.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from demo import nginx
from tests.support.postgres_server import children

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo.sh"
_READY_LINE = "Serving until Ctrl-C."
_TIMEOUT = 60.0


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEMO), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_help_prints_the_usage_and_sets_nothing_up() -> None:
    """--help answers at once, from the script's own header."""
    result = _script("--help")
    assert 0 == result.returncode
    assert "usage: scripts/demo.sh [--replicas N] [--port PORT]" in result.stdout
    for option in (
        "--replicas N",
        "--port PORT",
        "--single",
        "--serve",
        "--check",
        "--rolling-restart",
    ):
        assert f"  {option}" in result.stdout
    assert "services:" not in result.stdout  # no bootstrap ran


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--replicas"], "--replicas needs a number"),
        (["--port", "eighty"], "--port needs a number"),
    ],
)
def test_bad_arguments_are_refused_before_any_setup(args: list[str], message: str) -> None:
    """A typo fails in a moment with the reason, not after installing things."""
    result = _script(*args)
    assert 1 == result.returncode
    assert message in result.stderr
    assert "services:" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve", "--check"], "not allowed with argument"),
        (["--replicas", "0"], "must be at least 1"),
        (["--port", "70000"], "not a TCP port"),
    ],
)
def test_the_demo_refuses_what_the_script_lets_through(args: list[str], message: str) -> None:
    """Values and combinations are checked by the demo itself, before it starts anything."""
    result = subprocess.run(
        [sys.executable, "-m", "demo", *args],
        capture_output=True, text=True, timeout=30, check=False, env=_demo_env("unused"),
    )  # fmt: skip
    assert 2 == result.returncode
    assert message in result.stderr


def test_the_nginx_template_renders_with_the_demo_values(tmp_path: Path) -> None:
    """Both placeholders are filled in; nginx's own variables are left alone."""
    sockets = [tmp_path / "app-1.sock", tmp_path / "app-2.sock"]
    config = nginx.write_config(tmp_path, "127.0.0.1:8080", sockets).read_text()
    assert "${" not in config
    assert "listen 127.0.0.1:8080;" in config
    assert f"server unix:{sockets[0]} max_fails=0; server unix:{sockets[1]} max_fails=0;" in config
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in config


def test_a_placeholder_without_a_value_is_an_error() -> None:
    """Unlike envsubst, which would leave it for nginx to choke on."""
    with pytest.raises(KeyError, match=r"no value for \$\{TODO_UPSTREAM_SERVERS\}"):
        nginx.render(nginx.TEMPLATE.read_text(), {"TODO_NGINX_LISTEN": "8080"})


def test_a_failed_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    """PostgreSQL unreachable: exit 1 with the reason, and no temporary directory left."""
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--check", "--single", "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**_demo_env("postgresql://postgres@127.0.0.1:1/nowhere"), "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert 1 == result.returncode
    assert "demo: error: PostgreSQL on 127.0.0.1:1 does not answer" in result.stderr
    assert [] == list(tmp_path.iterdir())


@dataclass
class Serving:
    """A demo that serves, and its temporary directory."""

    demo: asyncio.subprocess.Process
    run_dir: Path


@pytest.fixture
async def serving(postgres_dsn: str) -> AsyncIterator[Serving]:
    """`demo --single --serve` on a free port, once it says it is serving."""
    database = urlsplit(postgres_dsn)._replace(path="/todo_demo_tests").geturl()
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "demo", "--single", "--serve", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_demo_env(database),
    )  # fmt: skip
    assert demo.stdout is not None
    output: list[str] = []
    try:
        async with asyncio.timeout(_TIMEOUT):
            while _READY_LINE not in (line := (await demo.stdout.readline()).decode()):
                assert line, f"the demo ended before serving:\n{''.join(output)}"
                output.append(line)
        logs = next(line.split()[1] for line in output if line.strip().startswith("logs "))
        yield Serving(demo, Path(logs).parent)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()


async def test_ctrl_c_stops_every_process_and_removes_the_directory(serving: Serving) -> None:
    """SIGINT while serving: exit 0, the app is stopped, its temporary directory is gone."""
    demo = serving.demo
    started = children(demo.pid)
    assert started, "the demo runs its app as a child process"
    assert demo.stdout is not None
    await _answers(started)
    assert serving.run_dir.name.startswith("todo-demo.")
    assert serving.run_dir.is_dir()
    demo.send_signal(signal.SIGINT)
    async with asyncio.timeout(_TIMEOUT):
        rest = (await demo.stdout.read()).decode()
        assert 0 == await demo.wait()
    assert "SIGINT: stopping everything" in rest
    assert f"stopped app and the relay; removed {serving.run_dir}" in rest
    assert not serving.run_dir.exists()
    assert not [pid for pid in started if _alive(pid)]


async def test_children_die_with_the_demo_even_when_it_is_killed(serving: Serving) -> None:
    """SIGKILL gives the demo no chance to clean up: the kernel stops its children."""
    started = children(serving.demo.pid)
    assert started
    serving.demo.kill()
    await serving.demo.wait()
    try:
        async with asyncio.timeout(_TIMEOUT):  # their parent-death signal, then their shutdown
            await asyncio.gather(*(_exited(pid) for pid in started))
    finally:
        shutil.rmtree(serving.run_dir)  # the one thing a killed demo leaves behind


async def _answers(pids: list[int]) -> None:
    """The app the demo started answers on the port it listens on."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{_port_of(pids)}/health/live")
    assert 200 == response.status_code


def _port_of(pids: list[int]) -> int:
    """The `--port` on the command line of one of `pids`."""
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--port" in argv:
            return int(argv[argv.index(b"--port") + 1])
    raise AssertionError("no child listens on a --port")


async def _exited(pid: int) -> None:
    """Wait until `pid` (any process, not only a child) has exited: its pidfd turns readable."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, exited.set_result, None)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _demo_env(database_url: str) -> dict[str, str]:
    """The environment scripts/demo.sh gives the demo, with this test's database."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "examples" / "todo") + (f":{path}" if path else ""),
        "TODO_DATABASE_URL": database_url,
    }
