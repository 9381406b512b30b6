"""The wait line and the sampling window: pure, driven by the time passed in."""

from __future__ import annotations

from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st

from scalepy.shedding import Priority, Sample

# The pure cores are internal; the tests drive them directly.
from scalepy.shedding._line import WaitLine
from scalepy.shedding._window import SampleWindow

LOW, NORMAL, HIGH = Priority.LOW, Priority.NORMAL, Priority.HIGH
T = TypeVar("T")


def drain(line: WaitLine[T], now: float) -> tuple[list[T], list[T]]:
    """Pop everything at `now`: (served in order, shed as stale)."""
    served: list[T] = []
    stale: list[T] = []
    while line:
        item = line.pop(now, stale)
        if item is not None:
            served.append(item)
    return served, stale


def test_first_in_first_out_while_the_line_keeps_emptying() -> None:
    """Within one class, and before `interval` passes, the oldest waiter is served first."""
    line: WaitLine[str] = WaitLine(10, interval=0.1, target=0.01)
    for index, name in enumerate("abc"):
        assert line.push(index * 0.01, NORMAL, name) is None
    assert (["a", "b", "c"], []) == drain(line, 0.05)


def test_last_in_first_out_and_stale_shed_under_sustained_overload() -> None:
    """Non-empty for longer than `interval`: newest served first, those older than target shed."""
    line: WaitLine[str] = WaitLine(10, interval=0.1, target=0.05)
    line.push(0.0, NORMAL, "stale")
    line.push(0.17, NORMAL, "fresh")
    line.push(0.18, NORMAL, "freshest")
    assert line.overloaded(0.2)
    assert (["freshest", "fresh"], ["stale"]) == drain(line, 0.2)
    assert not line.overloaded(0.2)


def test_a_line_that_never_empties_but_moves_within_target_is_not_overloaded() -> None:
    """A closed loop of clients keeps the line busy, each waiter briefly: nothing is shed.

    Every 10 ms one waiter is served and a new one arrives, for a second: the line
    never empties, but nobody waits longer than 30 ms, under the 50 ms target.
    """
    line: WaitLine[int] = WaitLine(10, interval=0.1, target=0.05)
    for client in range(3):
        line.push(0.0, NORMAL, client)
    served, stale = [], list[int]()
    for tick in range(1, 101):
        now = tick * 0.01
        item = line.pop(now, stale)
        assert item is not None
        served.append(item)
        line.push(now, NORMAL, item + 3)
        assert not line.overloaded(now)
    assert [] == stale
    assert list(range(100)) == served  # first in, first out throughout


def test_a_closed_loop_recovers_from_a_moment_of_overload() -> None:
    """Overload ends `interval` after the standing queue, not when the line empties.

    Four clients, each sending again as soon as it is answered (served or shed),
    never let the line empty. A 100 ms stall makes a standing queue: the line turns
    LIFO and sheds what went stale. A LIFO line that stayed so would starve its
    oldest waiters, shed them, and so on for as long as the clients send; this one
    is first in, first out again once nobody has waited past `target`.
    """
    line: WaitLine[float] = WaitLine(10, interval=0.1, target=0.05)  # items: when sent
    for _ in range(4):
        line.push(0.0, NORMAL, 0.0)
    now, served, stale = 0.1, list[float](), list[float]()  # a stall: nobody served until 0.1
    last_shed = 0.0
    while now < 1.0:
        shed_before = len(stale)
        item = line.pop(now, stale)
        for _ in stale[shed_before:]:
            last_shed = now
            line.push(now, NORMAL, now)  # the shed client sends again at once
        if item is not None:
            served.append(item)
            line.push(now, NORMAL, now)  # the served one sends its next request
        now += 0.01
    assert stale
    assert last_shed < 0.3  # in the stall's aftermath, then never again
    assert served[-50:] == sorted(served[-50:])  # first in, first out again
    assert not line.overloaded(now)


def test_a_standing_queue_that_forms_again_at_once_is_served_last_in_first_out() -> None:
    """Shedding empties the line; a queue standing again just after is overload still.

    Twice the calls a slot serves arrive (ten every 50 ms, one served every 10 ms):
    under LIFO the stale waiters are shed, the line empties, the next burst finds it
    empty. Were that emptiness taken for a line that caught up, the burst would wait
    `interval` first in, first out (90 ms here) before the line turned LIFO again.
    """
    line: WaitLine[float] = WaitLine(100, interval=0.1, target=0.02)  # items: when they came
    waits, stale = list[float](), list[float]()
    for tick in range(200):
        now = tick / 100
        if tick % 5 == 0:
            for _ in range(10):
                line.push(now, NORMAL, now)
        came = line.pop(now, stale) if line else None
        if came is not None and now > 0.5:  # once the first standing queue was found
            waits.append(now - came)
    assert stale
    assert max(waits) <= 2 * 0.02


def test_under_overload_waiters_older_than_stale_after_are_shed() -> None:
    """The shedder lowers `stale_after` below `target` (to the calls' duration)."""
    line: WaitLine[str] = WaitLine(10, interval=0.1, target=0.05)
    line.stale_after = 0.01
    line.push(0.0, NORMAL, "old")
    line.push(0.17, NORMAL, "older than 10 ms")
    line.push(0.195, NORMAL, "fresh")
    assert (["fresh"], ["old", "older than 10 ms"]) == drain(line, 0.2)


def test_expire_takes_out_the_waiters_past_max_wait_whatever_their_class() -> None:
    """Oldest first per class; `oldest()` is then the longest remaining waiter's arrival."""
    line: WaitLine[str] = WaitLine(10, interval=1.0, target=1.0)
    line.push(0.0, LOW, "low")
    line.push(0.1, HIGH, "high")
    line.push(0.3, NORMAL, "normal")
    expired: list[str] = []
    line.expire(0.6, 0.5, expired)
    assert ["low", "high"] == expired
    assert 0.3 == line.oldest()
    line.expire(0.8, 0.5, expired)
    assert 0 == len(line)
    assert float("inf") == line.oldest()


def test_higher_classes_are_served_first() -> None:
    """A HIGH waiter goes before NORMAL and LOW ones that came earlier."""
    line: WaitLine[str] = WaitLine(10, interval=1.0, target=1.0)
    line.push(0.0, LOW, "low")
    line.push(0.1, NORMAL, "normal")
    line.push(0.2, HIGH, "high")
    assert (["high", "normal", "low"], []) == drain(line, 0.3)


def test_a_full_line_evicts_the_oldest_waiter_of_a_lower_class() -> None:
    """A NORMAL arrival at a full line takes the place of the oldest LOW waiter."""
    line: WaitLine[str] = WaitLine(2, interval=1.0, target=1.0)
    line.push(0.0, LOW, "low-1")
    line.push(0.1, LOW, "low-2")
    assert "low-1" == line.push(0.2, NORMAL, "normal")
    assert 2 == len(line)
    assert (["normal", "low-2"], []) == drain(line, 0.3)


def test_a_full_line_refuses_an_arrival_of_the_lowest_class_present() -> None:
    """With nobody less important waiting, the arrival itself is refused."""
    line: WaitLine[str] = WaitLine(1, interval=1.0, target=1.0)
    line.push(0.0, NORMAL, "first")
    assert "second" == line.push(0.1, NORMAL, "second")
    assert "low" == line.push(0.1, LOW, "low")
    assert (["first"], []) == drain(line, 0.2)


def test_remove_takes_out_one_waiter_and_an_emptied_line_is_not_overloaded() -> None:
    """Removing the last waiter empties the line, resetting the overload clock."""
    line: WaitLine[str] = WaitLine(3, interval=0.1, target=0.05)
    line.push(0.0, NORMAL, "a")
    assert line.remove(0.5, NORMAL, "a")
    assert not line.remove(0.5, NORMAL, "a")
    line.push(0.55, NORMAL, "b")
    assert not line.overloaded(0.6)


@given(
    st.lists(st.tuples(st.sampled_from([LOW, NORMAL, HIGH]), st.floats(0, 0.01)), max_size=60),
    st.integers(1, 20),
)
def test_the_line_never_holds_more_than_its_size(
    arrivals: list[tuple[Priority, float]], size: int
) -> None:
    """Every arrival waits, evicts or is refused; nobody is lost and the bound holds."""
    line: WaitLine[int] = WaitLine(size, interval=0.1, target=0.05)
    now, shed = 0.0, list[int]()
    for item, (priority, gap) in enumerate(arrivals):
        now += gap
        refused = line.push(now, priority, item)
        if refused is not None:
            shed.append(refused)
        assert len(line) <= size
    served, stale = drain(line, now)
    assert sorted(range(len(arrivals))) == sorted(served + stale + shed)


def test_a_window_closes_after_its_duration_and_minimum_samples() -> None:
    """It folds calls into their mean RTT, the most in flight and any drop."""
    window = SampleWindow(duration=1.0, min_samples=3)
    assert window.add(0.1, 0.1, 4, dropped=False) is None  # opens at 0.0, when this call began
    assert window.add(0.5, 0.3, 9, dropped=True) is None
    assert window.add(0.9, 0.2, 2, dropped=False) is None  # 3 samples, but only 0.9 s
    sample = window.add(1.0, 0.2, 1, dropped=False)
    assert Sample(rtt=0.2, in_flight=9, dropped=True) == sample
    assert window.add(1.1, 5.0, 1, dropped=False) is None  # a new window opened
