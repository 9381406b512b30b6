"""The limit algorithms' pure cores: bounds, reaction to latency and drops, validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scalepy.errors import ConfigurationError
from scalepy.shedding import AIMD, Gradient, Sample

rtts = st.floats(min_value=1e-4, max_value=10.0)


@st.composite
def gradients(draw: st.DrawFn) -> Gradient:
    """Any valid `Gradient` configuration."""
    low = draw(st.integers(1, 50))
    high = draw(st.integers(low, 2000))
    return Gradient(
        min_limit=low,
        max_limit=high,
        initial_limit=draw(st.integers(low, high)),
        tolerance=draw(st.floats(1.0, 4.0)),
        smoothing=draw(st.floats(0.01, 1.0)),
        long_window=draw(st.integers(1, 1000)),
        headroom=draw(st.none() | st.integers(0, 20)),
    )


@st.composite
def aimds(draw: st.DrawFn) -> AIMD:
    """Any valid `AIMD` configuration."""
    low = draw(st.integers(1, 50))
    high = draw(st.integers(low, 2000))
    return AIMD(
        min_limit=low,
        max_limit=high,
        initial_limit=draw(st.integers(low, high)),
        backoff=draw(st.floats(0.05, 0.99)),
        increase=draw(st.floats(0.1, 10.0)),
        timeout=draw(st.floats(0.01, 10.0)),
    )


samples = st.builds(Sample, rtt=rtts, in_flight=st.integers(0, 3000), dropped=st.booleans())


@given(st.one_of(gradients(), aimds()), st.lists(samples, max_size=200))
def test_the_limit_stays_within_its_bounds(policy: Gradient | AIMD, feed: list[Sample]) -> None:
    """Whatever the samples, every limit an algorithm returns is in [min_limit, max_limit]."""
    core = policy.start()
    assert policy.initial_limit == core.limit
    for sample in feed:
        limit = core.update(sample)
        assert policy.min_limit <= limit <= policy.max_limit
        assert limit == core.limit


@given(
    gradients().filter(
        lambda g: g.initial_limit >= 16 and g.headroom is None and g.long_window >= 100
    ),
    rtts,
    st.floats(4.0, 10.0),
)
def test_gradient_shrinks_the_limit_when_latency_rises(
    policy: Gradient, base: float, factor: float
) -> None:
    """Latency at `factor` x tolerance x its long-term level lowers a used limit every sample.

    Down to a floor: below 16 the sqrt headroom may hold the limit up. The long-term
    RTT must remember (a `long_window` of 100 samples) for the rise to show.
    """
    core = policy.start()
    core.update(Sample(rtt=base, in_flight=policy.initial_limit, dropped=False))
    slow = base * factor * policy.tolerance
    for _ in range(3):
        before = core.limit
        if before < 16 or before == policy.min_limit:
            break
        after = core.update(Sample(rtt=slow, in_flight=math.ceil(before), dropped=False))
        assert after < before


@given(gradients(), rtts, st.integers(1, 50))
def test_gradient_grows_a_used_limit_while_latency_is_flat(
    policy: Gradient, rtt: float, rounds: int
) -> None:
    """At constant latency with the limit in use, the limit never falls and ends higher.

    Unless it starts at `max_limit`, or the headroom is 0 (then nothing moves it).
    """
    core = policy.start()
    for _ in range(rounds):
        before = core.limit
        after = core.update(Sample(rtt=rtt, in_flight=math.ceil(before), dropped=False))
        assert after >= before
    if policy.initial_limit < policy.max_limit and policy.headroom != 0:
        assert core.limit > policy.initial_limit


@given(gradients(), rtts, rtts)
def test_gradient_learns_only_the_fastest_latency_from_an_unused_limit(
    policy: Gradient, first: float, second: float
) -> None:
    """Under half the limit in flight: the limit stays; the baseline only falls to a faster RTT."""
    core = policy.start()
    core.update(Sample(rtt=first, in_flight=policy.initial_limit, dropped=False))
    limit, long_rtt = core.limit, core.long_rtt
    idle = math.ceil(limit / 2) - 1
    assert limit == core.update(Sample(rtt=second, in_flight=idle, dropped=False))
    assert min(long_rtt, second) == core.long_rtt


@given(rtts, st.floats(3.0, 10.0))
def test_gradient_does_not_drift_up_under_sustained_overload(base: float, factor: float) -> None:
    """Congested samples never raise the long-term RTT, so the limit cannot creep back up.

    (Above the floor: see the next test for a limit that cannot go lower.)
    """
    core = Gradient(initial_limit=100, long_window=10).start()
    core.update(Sample(rtt=base, in_flight=100, dropped=False))
    limits = []
    for _ in range(15):
        core.update(Sample(rtt=base * factor * 1.5, in_flight=math.ceil(core.limit), dropped=False))
        limits.append(core.limit)
    assert base == core.long_rtt
    assert limits == sorted(limits, reverse=True)


def test_gradient_learns_a_slower_service_when_shedding_cannot_help() -> None:
    """At its floor and still slow for `patience` samples: the slower latency is the new normal.

    (A dependency got slower; shedding more would not bring latency down.)
    """
    core = Gradient(initial_limit=16, patience=3).start()
    core.update(Sample(rtt=0.01, in_flight=16, dropped=False))
    for _ in range(200):
        before = core.limit
        core.update(Sample(rtt=0.1, in_flight=math.ceil(before), dropped=False))
        if core.long_rtt == 0.1:
            break
    assert 0.1 == core.long_rtt
    assert core.limit > before  # growing again from the new normal


def test_gradient_forgets_a_past_overload_quickly() -> None:
    """Once latency falls below half its long-term level, the baseline decays toward it."""
    core = Gradient(initial_limit=100, long_window=1000).start()
    core.update(Sample(rtt=1.0, in_flight=100, dropped=False))
    for _ in range(30):
        core.update(Sample(rtt=0.1, in_flight=100, dropped=False))
    assert core.long_rtt < 0.2


@given(aimds(), samples)
def test_aimd_backs_off_on_a_drop(policy: AIMD, sample: Sample) -> None:
    """A sample with a drop multiplies the limit by `backoff` (down to `min_limit`)."""
    core = policy.start()
    expected = max(policy.min_limit, policy.initial_limit * policy.backoff)
    dropped = Sample(rtt=sample.rtt, in_flight=sample.in_flight, dropped=True)
    assert expected == pytest.approx(core.update(dropped))


@given(aimds(), st.integers(0, 3000))
def test_aimd_backs_off_on_a_timeout(policy: AIMD, in_flight: int) -> None:
    """A sample slower than `timeout` counts as a drop, even without one."""
    core = policy.start()
    expected = max(policy.min_limit, policy.initial_limit * policy.backoff)
    slow = Sample(rtt=policy.timeout * 1.5, in_flight=in_flight, dropped=False)
    assert expected == pytest.approx(core.update(slow))


@given(aimds())
def test_aimd_grows_only_a_used_limit(policy: AIMD) -> None:
    """A good sample adds `increase` if half the limit was in use; otherwise nothing moves."""
    core = policy.start()
    fast = policy.timeout / 2
    idle = math.ceil(policy.initial_limit / 2) - 1
    assert policy.initial_limit == core.update(Sample(rtt=fast, in_flight=idle, dropped=False))
    used = Sample(rtt=fast, in_flight=policy.initial_limit, dropped=False)
    expected = min(policy.max_limit, policy.initial_limit + policy.increase)
    assert expected == pytest.approx(core.update(used))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_limit": 0}, "min_limit must be an int >= 1"),
        ({"initial_limit": 5, "min_limit": 10}, "min_limit <= initial_limit <= max_limit"),
        ({"initial_limit": 5, "max_limit": 4}, "min_limit <= initial_limit <= max_limit"),
        ({"tolerance": 0.9}, "tolerance must be a finite number >= 1"),
        ({"smoothing": 0.0}, r"smoothing must be a number in \(0, 1\]"),
        ({"smoothing": math.nan}, r"smoothing must be a number in \(0, 1\]"),
        ({"long_window": 0}, "long_window must be an int >= 1"),
        ({"headroom": -1}, "headroom must be an int >= 0"),
        ({"patience": 0}, "patience must be an int >= 1"),
    ],
)
def test_gradient_refuses_bad_configuration(kwargs: dict[str, float], message: str) -> None:
    """Each out-of-range option raises `ConfigurationError` naming the allowed values."""
    with pytest.raises(ConfigurationError, match=message):
        Gradient(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backoff": 1.0}, r"backoff must be a number in \(0, 1\)"),
        ({"increase": 0}, "increase must be a finite number > 0"),
        ({"timeout": math.inf}, "timeout must be a finite number > 0"),
        ({"max_limit": True}, "max_limit must be an int >= 1"),
    ],
)
def test_aimd_refuses_bad_configuration(kwargs: dict[str, float], message: str) -> None:
    """Each out-of-range option raises `ConfigurationError` naming the allowed values."""
    with pytest.raises(ConfigurationError, match=message):
        AIMD(**kwargs)  # type: ignore[arg-type]
