"""benchmarks/todo_load.py: the rows of a run, their ratios and the targets of issue 16."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from _wrk import WrkRun
from todo_load import (
    CONTENDERS,
    _fixed_rate,
    median_rows,
    options,
    ratios,
    row,
    scenario_requests,
    table,
    targets,
)

if TYPE_CHECKING:
    from _results import Row

_LATENCY = {"p50": 1.0, "p90": 2.0, "p99": 3.0, "p999": 4.0, "max": 5.0}


def _row(key: str, scenario: str, rate: float, statuses: dict[int, int] | None = None) -> Row:
    contender = next(c for c in CONTENDERS if c.key == key)
    counted = Counter(statuses or {200: int(rate)})
    measured = WrkRun(
        requests=counted.total(), seconds=1.0, statuses=counted, socket_errors=0,
        latency_ms=_LATENCY,
    )  # fmt: skip
    made = row(contender, scenario, measured, cpu_seconds=0.5)
    return dataclasses.replace(made, requests_per_second=rate)


def test_a_429_is_counted_apart_from_errors() -> None:
    """Intended 429s are not errors; a 500 or a socket error is."""
    measured = _row("todo-1", "read", 10, {200: 7, 429: 2, 500: 1})
    assert (1, 2) == (measured.errors, measured.intended)
    assert 50_000 == measured.extra["cpu_us_per_request"]


def test_throughput_counts_only_what_was_served() -> None:
    """A refusal (a 429, a shedder's 503) is answered fast: it must not count as throughput."""
    counted = Counter({200: 60, 429: 10, 503: 30})
    measured = WrkRun(
        requests=100, seconds=2.0, statuses=counted, socket_errors=0, latency_ms=_LATENCY
    )
    made = row(next(c for c in CONTENDERS if c.key == "todo-2"), "read", measured, 1.0)
    assert 30.0 == made.requests_per_second
    assert 50.0 == made.extra["responses_per_second"]


def test_todo_rows_are_compared_with_the_same_process_count() -> None:
    """A Todo API row's ratios are to the tutorial and the bare route of its worker count."""
    rows = [
        _row("todo-1", "read", 3000),
        _row("todo-2", "read", 9000),
        _row("todo-nginx-3", "read", 8000),
        _row("tutorial-1", "read", 1000),
        _row("tutorial-2", "read", 2000),
        _row("bare-2", "read", 12000),
    ]
    ratios(rows)
    assert 3.0 == rows[0].extra["vs_tutorial"]
    assert "vs_bare" not in rows[0].extra  # no bare-1 row in this run
    assert 4.5 == rows[1].extra["vs_tutorial"]
    assert 0.75 == rows[1].extra["vs_bare"]
    assert "vs_tutorial" not in rows[2].extra  # no tutorial behind nginx
    assert "4.50x" in table(rows).splitlines()[2]


def test_targets_name_what_was_met_and_what_was_missed() -> None:
    """Reads need 3x the tutorial and half the bare route, writes 1.5x; errors miss."""
    rows = [
        _row("todo-2", "read", 5000),
        _row("tutorial-2", "read", 2000),
        _row("bare-2", "read", 8000),
        _row("todo-2", "write", 1600),
        _row("tutorial-2", "write", 1000),
        _row("todo-2", "list", 100, {200: 99, 503: 1}),
    ]
    ratios(rows)
    lines = targets(rows)
    # Each of 5000, 2000 and 8000 requests took 0.5 s of CPU in all.
    assert "MISSED todo-2 read: 2.50x the tutorial (>= 3x); by CPU per request 2.50x" in lines
    assert "ok     todo-2 read: 62% of the bare route (>= 50 %); by CPU per request 62%" in lines
    assert "ok     todo-2 write: 1.60x the tutorial (>= 1.5x); by CPU per request 1.60x" in lines
    assert "MISSED rows with errors (non-2xx other than 429): 1" == lines[-1]


def test_the_mix_is_nine_reads_to_one_write_with_the_token() -> None:
    """The mixed scenario's cycle: 90 % GETs by id, 10 % PATCHes carrying the bearer token."""
    cycle = scenario_requests("mix", "TOKEN")
    methods = Counter(request.method for request in cycle)
    assert {"GET": 90, "PATCH": 10} == dict(methods)
    patch = next(request for request in cycle if request.method == "PATCH")
    assert "Bearer TOKEN" == patch.headers["Authorization"]


def test_quick_is_short_and_unknown_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """`--quick` makes 1 s rows; an unknown contender stops the command with its name."""
    quick = options(["--quick"])
    assert (1.0, 1.0, 1) == (quick.seconds, quick.warmup, quick.rounds)
    assert 3 == options([]).rounds
    assert [c.key for c in CONTENDERS] == quick.contenders
    with pytest.raises(SystemExit):
        options(["--contenders", "todo-1,todo-9"])
    assert "todo-9" in capsys.readouterr().err


def test_the_fixed_rate_is_half_the_baselines_read_rate_unless_given() -> None:
    """Half tutorial-2's read rate (rounded, at most 2000/s), none before it ran; or the option."""
    assert 0.0 == _fixed_rate(None, [_row("bare-2", "read", 9000)])
    assert 1230.0 == _fixed_rate(None, [_row("tutorial-2", "read", 2461)])
    assert 2000.0 == _fixed_rate(None, [_row("tutorial-2", "read", 9000)])
    assert 300.0 == _fixed_rate(300.0, [_row("tutorial-2", "read", 2461)])


def test_a_row_is_its_median_round_and_its_ratios_the_rounds_medians() -> None:
    """Ratios are taken within a round, then their median: a slow round moves one ratio.

    The reference's slow second round would have made the Todo row 55 % on its own.
    """
    rounds = [
        [_row("bare-1", "read", 10_000), _row("todo-1", "read", 4_800)],
        [_row("bare-1", "read", 8_000), _row("todo-1", "read", 4_400)],  # a slow minute
        [_row("bare-1", "read", 9_000), _row("todo-1", "read", 4_600)],
    ]
    for measured in rounds:
        ratios(measured)
    bare, todo = median_rows(rounds)
    assert (9_000, [10_000, 8_000, 9_000]) == (bare.requests_per_second, bare.extra["rounds"])
    assert 4_600 == todo.requests_per_second
    assert [0.48, 0.55, 4_600 / 9_000] == todo.extra["vs_bare_rounds"]
    assert 4_600 / 9_000 == todo.extra["vs_bare"]
    line = next(text for text in targets([bare, todo]) if "bare route" in text)
    assert line.startswith("ok     todo-1 read: 51% of the bare route")
    assert line.endswith("(rounds: 48%, 55%, 51%)")
