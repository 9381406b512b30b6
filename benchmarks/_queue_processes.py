"""The queue benchmark's child processes: one producer and a group of workers per contender."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncio.subprocess import Process

AGENT = str(Path(__file__).with_name("_queue_agent.py"))
REPLY_TIMEOUT = 120.0  # seconds a producer may take over one command
STOP_TIMEOUT = 5.0  # seconds a worker gets to exit on SIGTERM before SIGKILL


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a child's log, to show why it failed."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(text[-lines:])


async def spawn(python: str, log: Path, *args: str, replies: bool) -> Process:
    """Start `_queue_agent.py` with `args` under `python`, its stdin a pipe, stderr to `log`."""
    with log.open("ab") as errors:
        return await asyncio.create_subprocess_exec(
            python,
            AGENT,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE if replies else asyncio.subprocess.DEVNULL,
            stderr=errors,
        )


class ProducerProcess:
    """A producer agent, driven by JSON commands."""

    def __init__(self, process: Process, log: Path) -> None:
        self._process = process
        self._log = log

    @classmethod
    async def start(
        cls, python: str, log: Path, contender: str, url: str, name: str
    ) -> ProducerProcess:
        """Start the producer of `contender` on queue `name`."""
        args = (contender, "producer", "--url", url, "--name", name)
        return cls(await spawn(python, log, *args, replies=True), log)

    async def ask(self, **command: Any) -> dict[str, float]:
        """Send one command and return the answer."""
        assert self._process.stdin is not None  # both pipes are set by start()
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(command).encode() + b"\n")
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), REPLY_TIMEOUT)
        if not line:
            raise RuntimeError(f"a producer died; its log ends with:\n{log_tail(self._log)}")
        reply: dict[str, float] = json.loads(line)
        return reply

    async def aclose(self) -> None:
        """Close its stdin, which ends it."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        await asyncio.wait_for(self._process.wait(), STOP_TIMEOUT)


class WorkerGroup:
    """The worker processes of one contender, held at the go signal until `go()`."""

    def __init__(self, processes: list[Process], logs: list[Path]) -> None:
        self._processes = processes
        self._logs = logs

    @classmethod
    async def start(
        cls,
        python: str,
        logs: list[Path],
        contender: str,
        url: str,
        name: str,
        keys: str,
        concurrency: int,
    ) -> WorkerGroup:
        """Start one worker process per log file."""
        args = (contender, "worker", "--url", url, "--name", name, "--keys", keys)
        processes = [
            await spawn(python, log, *args, "--concurrency", str(concurrency), replies=False)
            for log in logs
        ]
        return cls(processes, logs)

    def check_alive(self) -> None:
        """Raise with the log of a worker that exited."""
        for process, log in zip(self._processes, self._logs, strict=True):
            if process.returncode is not None:
                raise RuntimeError(
                    f"a worker exited ({process.returncode}); its log ends with:\n{log_tail(log)}"
                )

    async def go(self) -> None:
        """Let every worker start its library's worker."""
        for process in self._processes:
            assert process.stdin is not None  # set by start()
            process.stdin.write(b"go\n")
            await process.stdin.drain()

    async def stop(self) -> None:
        """Ask every worker to stop (SIGTERM), and kill those still there after a while."""
        for process in self._processes:
            if process.returncode is None:
                process.terminate()
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()


def progress(message: str) -> None:
    """Show what runs now, on stderr, so the table on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)
