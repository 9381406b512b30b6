"""Probes for tests: they count their runs and do what the test tells them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalepy.health import ProbeResult

__all__ = ("Probe",)


@dataclass(eq=False)
class Probe:
    """An async probe returning `result` (or raising `error`), after `gate` opens if set."""

    result: ProbeResult = None
    error: BaseException | None = None
    gate: asyncio.Event | None = None
    ignore_cancel: bool = False
    runs: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self) -> ProbeResult:
        """Count the run, wait for the gate, then answer."""
        self.runs += 1
        self.started.set()
        if self.gate is not None:
            await self._wait()
        if self.error is not None:
            raise self.error
        return self.result

    async def _wait(self) -> None:
        assert self.gate is not None
        while True:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                if self.ignore_cancel:
                    continue
                raise
            return
