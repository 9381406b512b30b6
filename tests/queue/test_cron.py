"""`Cron`: parsing, and next fire times checked against a brute-force search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.errors import ConfigurationError
from scalepy.queue import Cron

START = datetime(2024, 1, 1, tzinfo=UTC)


def brute_force(cron: Cron, after: datetime) -> datetime:
    """The first whole minute (or second, for a seconds field) after `after` that matches."""
    step = timedelta(seconds=1) if cron.seconds != {0} else timedelta(minutes=1)
    t = after.replace(microsecond=0, second=0 if step == timedelta(minutes=1) else after.second)
    while True:
        t += step
        if t > after and _matches(cron, t):
            return t


def _matches(cron: Cron, t: datetime) -> bool:
    weekday = (t.weekday() + 1) % 7
    in_month, in_week = t.day in cron.days, weekday in cron.weekdays
    day = in_month and in_week if cron.any_day or cron.any_weekday else in_month or in_week
    return (
        day
        and t.month in cron.months
        and t.hour in cron.hours
        and t.minute in cron.minutes
        and t.second in cron.seconds
    )


def field(low: int, high: int) -> st.SearchStrategy[str]:
    """A random cron field over [low, high]: *, a value, a range, a step or a list."""
    value = st.integers(low, high)
    single = st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda r: f"{min(r)}-{max(r)}"),
        st.integers(1, max(1, (high - low) // 2)).map(lambda s: f"*/{s}"),
    )
    return st.lists(single, min_size=1, max_size=3).map(",".join)


@settings(max_examples=200, deadline=None)
@given(
    minute=field(0, 59),
    hour=field(0, 23),
    day=st.one_of(st.just("*"), field(1, 28)),
    month=field(1, 12),
    weekday=field(0, 7),
    offset=st.integers(0, 366 * 24 * 60),
)
def test_next_after_agrees_with_a_brute_force_search(
    minute: str, hour: str, day: str, month: str, weekday: str, offset: int
) -> None:
    """For random five-field expressions and times, the next fire matches a minute scan."""
    cron = Cron(f"{minute} {hour} {day} {month} {weekday}")
    after = START + timedelta(minutes=offset, seconds=offset % 60)
    assert brute_force(cron, after) == cron.next_after(after)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 9-17 * * mon-fri", datetime(2025, 1, 4), datetime(2025, 1, 6, 9, 0)),
        ("0 0 29 2 *", datetime(2025, 1, 1), datetime(2028, 2, 29)),
        ("*/2 * * * * *", datetime(2025, 1, 1, 0, 0, 1, 500), datetime(2025, 1, 1, 0, 0, 2)),
        ("30 10 * * * *", datetime(2025, 1, 1, 0, 11), datetime(2025, 1, 1, 1, 10, 30)),
        ("@hourly", datetime(2025, 1, 1, 0, 0), datetime(2025, 1, 1, 1, 0)),
        ("@weekly", datetime(2025, 1, 1), datetime(2025, 1, 5)),
        ("0 0 1 jan,JUL *", datetime(2025, 2, 1), datetime(2025, 7, 1)),
        ("0 12 13 * 5", datetime(2025, 1, 1), datetime(2025, 1, 3, 12)),  # Friday or the 13th
        ("0 0 * * 7", datetime(2025, 1, 1), datetime(2025, 1, 5)),  # 7 is Sunday too
        ("5/20 * * * *", datetime(2025, 1, 1, 0, 6), datetime(2025, 1, 1, 0, 25)),
    ],
)
def test_known_fire_times(expression: str, after: datetime, expected: datetime) -> None:
    """Well-known expressions fire when cron would (naive times are UTC)."""
    assert expected.replace(tzinfo=UTC) == Cron(expression).next_after(after)


def test_other_timezones_are_converted_to_utc() -> None:
    """An aware time in another zone is compared in UTC, and the result is in UTC."""
    after = datetime(2025, 1, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    assert datetime(2025, 1, 1, 7, tzinfo=UTC) == Cron("0 * * * *").next_after(after)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "minute must be between 0 and 59"),
        ("* * 0 * *", "day of month must be between 1 and 31"),
        ("* * * foo *", "month must be between 1 and 12"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "minute must be between 1 and 59"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_malformed_expressions_are_refused(expression: str, message: str) -> None:
    """A malformed or impossible expression raises ConfigurationError saying what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        Cron(expression)
