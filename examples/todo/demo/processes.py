"""The demo's child processes: start them with their logs in files, stop every one of them.

Each child is a session of its own, so a Ctrl-C in the terminal reaches only the demo,
which then stops the children in order (nginx first, the worker last), and a child's
own children (nginx workers) go with it. Each child also gets SIGTERM from the kernel
if the demo dies without cleaning up (SIGKILL): `setpriv --pdeathsig`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ("Child", "ChildFailed", "run", "spawn")

_STOP_TIMEOUT = 10.0


class ChildFailed(Exception):
    """A child process exited or failed where it should not have; its log says why."""


@dataclass
class Child:
    """A running child process and the file its stdout and stderr go to."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def running(self) -> bool:
        """Whether it has not exited."""
        return self.process.returncode is None

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log, indented, for an error message."""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text) or "    (empty log)"

    def check_running(self) -> None:
        """Raise `ChildFailed` (with its log) if it has exited."""
        if not self.running:
            raise ChildFailed(
                f"{self.name} exited with status {self.process.returncode}; "
                f"last lines of {self.log}:\n{self.tail()}"
            )

    async def stop(self, grace: float = _STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; then whatever is left of its session."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), grace)
        # Its own children (e.g. nginx workers) share its process group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()


async def run(
    name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path, within: float = 60.0
) -> str:
    """Run a one-shot command to completion and return its output.

    Raises:
        ChildFailed: It exited with a non-zero status or did not finish `within` seconds.
    """
    child = await spawn(name, argv, env, logs)
    try:
        await asyncio.wait_for(child.process.wait(), within)
    except TimeoutError:
        raise ChildFailed(f"{name} did not finish within {within:g} s:\n{child.tail()}") from None
    finally:
        await child.stop()
    if child.process.returncode:
        raise ChildFailed(f"{name} failed with status {child.process.returncode}:\n{child.tail()}")
    return child.log.read_text(errors="replace")


async def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path) -> Child:
    """Start `argv` in a session of its own, output to `logs/NAME.log`."""
    log = logs / f"{name}.log"
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *_dies_with_parent(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    return Child(name, process, log)


def _dies_with_parent(argv: Sequence[str]) -> list[str]:
    """Prefix `argv` so that the kernel sends it SIGTERM if the demo dies (when possible)."""
    if argv[0] == "setpriv" or shutil.which("setpriv") is None:
        return list(argv)  # already wrapped (nginx as nobody), or no setpriv on this system
    return ["setpriv", "--pdeathsig", "TERM", "--", *argv]
