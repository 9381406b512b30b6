"""A redis-server of the benchmark's own, so a run may pin, flush and stop it.

A benchmark must never change a server it did not start: pinning a CPU, emptying a
database or changing its configuration belongs on a server like this one, started
for the run on a free port (or `port`) with persistence off, and stopped after it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT = 10.0  # seconds for the server to answer PING


@dataclass(frozen=True, slots=True)
class PrivateRedis:
    """A running server of the run's own."""

    pid: int
    port: int

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>`, no database."""
        return f"redis://127.0.0.1:{self.port}"


@contextlib.contextmanager
def private_redis(port: int = 0) -> Iterator[PrivateRedis]:
    """Start `redis-server` on `port` (0: a free one), yield it once it answers, stop it."""
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="scalepy-bench-redis-") as directory:
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_pong(port, process)
            yield PrivateRedis(process.pid, port)
        finally:
            process.terminate()
            process.wait()


def _wait_for_pong(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"PING\r\n")
            if conn.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.05)  # the server is starting: nothing to wait on but its port
    raise RuntimeError(f"redis-server on port {port} did not answer in {START_TIMEOUT:.0f} s")
