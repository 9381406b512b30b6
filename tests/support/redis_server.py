"""A throwaway redis-server on a free port, for tests that stop, pause or restart Redis."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Self

import redis

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

__all__ = ("RedisClusterNode", "RedisServer", "free_port")

_READY = b"Ready to accept connections"


# A cluster node also listens on its port + 10000, so ports must stay below this.
_HIGHEST_PORT = 55535


def free_port() -> int:
    """Return a TCP port nothing listens on right now, low enough for a cluster node."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port <= _HIGHEST_PORT:
            return port


class RedisServer:
    """A redis-server child process the test owns: start, stop, pause, resume.

    The port stays the same across restarts, so clients can reconnect to it: `port`, or
    a free one.
    """

    def __init__(self, directory: Path, *options: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = directory
        self.options = options
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:<port>/0`."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it logs that it accepts connections."""
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            *self.options,
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        log = b""
        for line in process.stdout:  # the server's own log tells when it is ready
            log += line
            if _READY in line:
                break
        else:
            process.kill()
            process.wait()
            process.stdout.close()
            raise RuntimeError(f"redis-server did not start:\n{log.decode(errors='replace')}")
        os.set_blocking(process.stdout.fileno(), False)
        self._process = process

    def stop(self) -> None:
        """Kill the server (connections drop at once) and reap it."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            assert self._process.stdout is not None
            self._process.stdout.close()
            self._process = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Unfreeze a paused server (SIGCONT)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self.resume()
        self.stop()


class RedisClusterNode(RedisServer):
    """A one-node Redis Cluster holding every slot, which the test may stop and restart.

    It runs the cluster code paths on a server of the test's own; its slots survive
    restarts (in nodes.conf).
    """

    def __init__(self, directory: Path) -> None:
        config = str(directory / "nodes.conf")
        super().__init__(directory, "--cluster-enabled", "yes", "--cluster-config-file", config)

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:<port>`."""
        return f"redis+cluster://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the node, give it every slot the first time, and wait until the cluster is ok."""
        super().start()
        with redis.Redis(port=self.port) as admin:
            if b"cluster_slots_assigned:0" in admin.execute_command("CLUSTER", "INFO"):
                admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
            # The server offers no event for its cluster state: poll until it is ok.
            while b"cluster_state:ok" not in admin.execute_command("CLUSTER", "INFO"):
                time.sleep(0.01)
