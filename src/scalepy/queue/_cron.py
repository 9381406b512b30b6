"""`Cron`: a cron expression, and the next time it fires after a given moment (UTC).

Five fields (`minute hour day-of-month month day-of-week`) or six, with seconds
first (`second minute hour …`). Each field takes `*`, a number, a range `a-b`, a
step `*/n`, `a-b/n` or `a/n`, and comma-separated lists of those; months and
weekdays also take names (`jan`, `mon`), and weekday 7 is Sunday like 0. As in
Vixie cron, when both day fields are restricted a day matches either of them.
The macros `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scalepy.errors import ConfigurationError

__all__ = ("Cron",)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (numbered from `lowest`)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)
_HORIZON = timedelta(days=366 * 8)  # covers every leap-year-only date (Feb 29)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron expression; `next_after()` says when it fires next.

    Raises:
        ConfigurationError: The expression is malformed, or can never fire
            (e.g. `0 0 30 2 *`); the message says which field is wrong.

    Example:
        >>> Cron("*/15 9-17 * * mon-fri").next_after(datetime(2025, 1, 4, tzinfo=UTC))
        datetime.datetime(2025, 1, 6, 9, 0, tzinfo=datetime.timezone.utc)
    """

    expression: str
    """The expression as given."""
    seconds: frozenset[int] = field(init=False, repr=False)
    """Seconds of the minute it fires at (0 only, for a five-field expression)."""
    minutes: frozenset[int] = field(init=False, repr=False)
    """Minutes of the hour it fires at."""
    hours: frozenset[int] = field(init=False, repr=False)
    """Hours of the day it fires at."""
    days: frozenset[int] = field(init=False, repr=False)
    """Days of the month it fires on."""
    months: frozenset[int] = field(init=False, repr=False)
    """Months (1-12) it fires in."""
    weekdays: frozenset[int] = field(init=False, repr=False)
    """Days of the week it fires on, 0 for Sunday."""
    any_day: bool = field(init=False, repr=False)
    """Whether the day-of-month field is `*`."""
    any_weekday: bool = field(init=False, repr=False)
    """Whether the day-of-week field is `*`."""

    def __post_init__(self) -> None:
        text = _MACROS.get(self.expression.strip().lower(), self.expression)
        parts = text.split()
        if len(parts) == 5:
            parts.insert(0, "0")
        if len(parts) != 6:
            raise ConfigurationError(
                f"cron expression {self.expression!r} needs 5 fields (minute hour day month "
                "weekday) or 6 (second first), or a macro such as @hourly"
            )
        values = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        for name, value in zip(
            ("seconds", "minutes", "hours", "days", "months", "weekdays"), values, strict=True
        ):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "weekdays", frozenset(day % 7 for day in self.weekdays))
        object.__setattr__(self, "any_day", parts[3] == "*")
        object.__setattr__(self, "any_weekday", parts[5] == "*")
        start = datetime(2000, 1, 1, tzinfo=UTC)
        if self._search(start, start + _HORIZON) is None:
            raise ConfigurationError(f"cron expression {self.expression!r} never fires")

    def next_after(self, moment: datetime) -> datetime:
        """Return the first fire time strictly after `moment`, in UTC, whole seconds.

        Args:
            moment: A timezone-aware time (naive times are taken as UTC).

        Returns:
            The next fire time, timezone-aware in UTC.
        """
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        found = self._search(moment, moment + _HORIZON)
        assert found is not None, "checked at parse time: every expression fires"
        return found

    def _day_matches(self, moment: datetime) -> bool:
        in_month = moment.day in self.days
        in_week = (moment.weekday() + 1) % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week

    def _search(self, after: datetime, limit: datetime) -> datetime | None:
        t = after.replace(microsecond=0) + timedelta(seconds=1)
        while t <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        return None


def _parse_field(
    text: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, slash, step_text = item.partition("/")
        step = _number(step_text, name, 1, high) if slash else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _value(start, name, low, high, names), _value(end, name, low, high, names)
            if first > last:
                raise ConfigurationError(f"cron {name} range {span!r} runs backwards")
        else:
            first = _value(span, name, low, high, names)
            last = high if slash else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + low
    return _number(text, name, low, high)


def _number(text: str, name: str, low: int, high: int) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigurationError(f"cron {name} must be between {low} and {high}, got {text!r}")
    return int(text)
