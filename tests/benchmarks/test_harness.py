"""The shared benchmark harness: warm-up, alternation, and counting what went wrong."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING

from _harness import median_throughputs, print_table

if TYPE_CHECKING:
    import pytest


async def test_errors_logged_warnings_and_fallbacks_are_counted_per_contender() -> None:
    """A call that raises, a WARNING logged and a fallback counter's growth all count."""
    calls = {"raises": 0, "logs": 0, "falls back": 0, "clean": 0}
    fallbacks = 0

    async def raises() -> None:
        calls["raises"] += 1
        if calls["raises"] % 2:
            raise RuntimeError("Redis went away")
        await asyncio.sleep(0)

    async def logs() -> None:
        calls["logs"] += 1
        logging.getLogger("peer").warning("failed; the loader answered")
        await asyncio.sleep(0)

    async def falls_back() -> None:
        nonlocal fallbacks
        calls["falls back"] += 1
        fallbacks += 1
        await asyncio.sleep(0)

    async def clean() -> None:
        calls["clean"] += 1
        await asyncio.sleep(0)

    figures = await median_throughputs(
        {"raises": raises, "logs": logs, "falls back": falls_back, "clean": clean},
        tasks=2,
        seconds=0.02,
        rounds=2,
        fallbacks={"falls back": lambda: fallbacks},
    )
    assert {"raises": True, "logs": True, "falls back": True, "clean": False} == {
        name: figure.errors > 0 for name, figure in figures.items()
    }
    assert all(figure.median > 0 for figure in figures.values())


async def test_a_warm_up_round_runs_before_the_measured_ones() -> None:
    """The first calls happen in a discarded round: an error there is not counted."""
    seen = 0

    async def fails_first() -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            raise RuntimeError("cold")
        await asyncio.sleep(0)

    figures = await median_throughputs({"cold start": fails_first}, 1, 0.02, 1)
    assert 0 == figures["cold start"].errors
    assert seen > 1


async def test_every_round_starts_on_a_collected_and_frozen_heap() -> None:
    """What was alive before a round is frozen: the round's collections do not scan it."""
    gc.unfreeze()
    frozen: list[int] = []

    async def probe() -> None:
        frozen.append(gc.get_freeze_count())
        await asyncio.sleep(0)

    try:
        await median_throughputs({"probe": probe}, 1, 0.02, 2)
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
    assert frozen
    assert min(frozen) > 0


def test_tables_align_their_columns(capsys: pytest.CaptureFixture[str]) -> None:
    """Left columns are padded on the right, the others on the left."""
    print_table(["name", "ops/s"], [["a", "1"], ["long name", "1,000"]])
    out = capsys.readouterr().out
    assert ["name      ops/s", "a             1", "long name 1,000"] == out.splitlines()
