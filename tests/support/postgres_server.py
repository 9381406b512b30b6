"""A throwaway PostgreSQL server on a free port, for tests that stop, pause or restart it.

`initdb` takes about a second, so a test session creates one data directory and
starts and stops the same server as often as it likes. When the tests run as
root (CI containers), the server runs as the `postgres` user, as it must.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from tests.support.redis_server import free_port

__all__ = ("PostgresServer", "children")

_READY = "database system is ready to accept connections"
_START_TIMEOUT = 30.0


def _bindir() -> Path:
    """Where initdb and postgres live: $SCALEPY_TEST_PG_BINDIR, else the newest installed."""
    configured = os.environ.get("SCALEPY_TEST_PG_BINDIR")
    if configured:
        return Path(configured)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    if not found:
        raise RuntimeError(
            "PostgreSQL server binaries not found: install postgresql or set SCALEPY_TEST_PG_BINDIR"
        )
    return Path(found[-1])


def children(pid: int) -> list[int]:
    """Return the processes whose parent is `pid`.

    Each backend is a session of its own, outside the postmaster's process group,
    so they are found through /proc.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # the process just ended
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry))
    return found


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it ended since it was listed
            os.kill(pid, signum)


class PostgresServer:
    """A postgres child process the tests own: start, stop, pause, resume.

    The port stays the same across restarts, so pools can reconnect to it: `port`, or
    a free one. The server trusts every local connection (user `postgres`, no password).
    """

    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self._bin = _bindir()
        self._root = Path(tempfile.mkdtemp(prefix="scalepy-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "server.log"
        self._user: int | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            self._user = pwd.getpwnam("postgres").pw_uid
            os.chown(self._root, self._user, -1)
        self._process: subprocess.Popen[bytes] | None = None
        self._initialised = False

    def dsn(self, database: str = "postgres") -> str:
        """`postgresql://postgres@127.0.0.1:<port>/<database>`."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive (it may be paused)."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (creating its data directory the first time) and wait until ready."""
        if not self._initialised:
            self._run(
                str(self._bin / "initdb"), "-D", str(self._data), "-U", "postgres",
                "-A", "trust", "-E", "UTF8", "--no-sync",
            )  # fmt: skip
            self._initialised = True
        offset = self._log.stat().st_size if self._log.exists() else 0
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self._bin / "postgres"), "-D", str(self._data), "-p", str(self.port),
                    "-k", str(self._root), "-c", "listen_addresses=127.0.0.1",
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "logging_collector=off",
                ],
                stdout=log,
                stderr=log,
                user=self._user,
                start_new_session=True,  # signals to the test's process group do not reach it
            )  # fmt: skip
        self._wait_ready(offset)

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the server and reap it; sessions are terminated.

        Args:
            immediate: Crash-like (SIGQUIT: every backend exits at once) instead of
                a fast shutdown (SIGINT: sessions are told the administrator ended them).
        """
        process = self._process
        if process is None:
            return
        self.resume()
        if process.poll() is None:
            process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            process.wait(timeout=_START_TIMEOUT)
        self._process = None

    def pause(self) -> None:
        """Freeze the server and its backends (SIGSTOP): connections stay open, nothing answers."""
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)  # first, so that it forks no new backend
        _signal_all(children(self._process.pid), signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT); harmless if it is not paused."""
        if self.running:
            assert self._process is not None
            _signal_all(children(self._process.pid), signal.SIGCONT)
            os.kill(self._process.pid, signal.SIGCONT)

    def remove(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop(immediate=True)
        shutil.rmtree(self._root, ignore_errors=True)

    def _run(self, *command: str) -> None:
        result = subprocess.run(command, capture_output=True, user=self._user, check=False)
        if result.returncode:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"{command[0]} failed:\n{output}")

    def _wait_ready(self, offset: int) -> None:
        """Poll the server's log (an external process: no event to await) until it is ready."""
        deadline = time.monotonic() + _START_TIMEOUT
        assert self._process is not None
        while time.monotonic() < deadline:
            with self._log.open("rb") as log:
                log.seek(offset)
                if _READY in log.read().decode(errors="replace"):
                    return
            if self._process.poll() is not None:
                break
            time.sleep(0.02)
        tail = self._log.read_text(errors="replace")[-2000:]
        self.stop(immediate=True)
        raise RuntimeError(f"postgres did not start on port {self.port}:\n{tail}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()
