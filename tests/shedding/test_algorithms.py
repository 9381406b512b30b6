"""The limit algorithms' pure cores: bounds, reaction to latency and drops, validation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalepy.errors import ConfigurationError
from scalepy.shedding import AIMD, Gradient, Sample

if TYPE_CHECKING:
    from scalepy.shedding._gradient import GradientCore

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
        probe_every=draw(st.integers(1, 1000)),
        headroom=draw(st.none() | st.integers(0, 20)),
        patience=draw(st.integers(1, 10)),
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
    first = policy.min_limit if isinstance(policy, Gradient) else policy.initial_limit
    assert first == core.limit  # a gradient core probes its baseline at min_limit first
    for sample in feed:
        limit = core.update(sample)
        assert policy.min_limit <= limit <= policy.max_limit
        assert limit == core.limit


class ReferenceGradient:
    """The gradient algorithm as its docstring states it, written plainly: the model."""

    def __init__(self, config: Gradient) -> None:
        self.config = config
        self.limit = float(config.min_limit)
        self.baseline = math.nan
        self.resume: float | None = float(config.initial_limit)  # probing first
        self.probed: list[float] = []
        self.slow = self.since_probe = 0

    def update(self, sample: Sample) -> float:
        """The limit after `sample`."""
        config = self.config
        if sample.rtt <= 0:
            return self.limit
        if self.resume is not None:  # probing: clean samples only, the faster of two
            if sample.in_flight <= config.min_limit:
                self.probed.append(sample.rtt)
                self.baseline = min(self.probed)
                if len(self.probed) == 2:
                    self.limit, self.resume, self.probed = self.resume, None, []
            return self.limit
        self.baseline = min(self.baseline, sample.rtt)
        if 2 * sample.in_flight < self.limit:
            return self.limit
        gradient = config.tolerance * self.baseline / sample.rtt
        growth = math.sqrt(self.limit) if config.headroom is None else config.headroom
        target = self.limit + growth if gradient >= 1 else self.limit * max(gradient, 0.5)
        moved = self.limit + config.smoothing * (target - self.limit)
        self.limit = min(max(moved, config.min_limit), config.max_limit)
        floored = gradient < 1 and self.limit == config.min_limit
        self.slow = self.slow + 1 if gradient <= 0.5 or floored else 0
        self.since_probe += 1
        if self.slow >= config.patience or self.since_probe >= config.probe_every:
            self.resume, self.slow, self.since_probe = self.limit, 0, 0
            self.limit = config.min_limit
        return self.limit


@settings(deadline=None)  # 300 updates: slow on a busy machine, not stuck
@given(gradients(), st.lists(samples, max_size=300))
def test_gradient_follows_the_reference_model(policy: Gradient, feed: list[Sample]) -> None:
    """Whatever the samples, the core's limit and baseline are the plain model's."""
    core, model = policy.start(), ReferenceGradient(policy)
    for sample in feed:
        assert model.update(sample) == pytest.approx(core.update(sample))
        assert (model.resume is not None) == core.probing
        if not math.isnan(model.baseline):
            assert model.baseline == core.baseline


def probe(core: GradientCore, rtt: float) -> None:
    """Feed a probing core two clean samples at `rtt`."""
    assert core.probing
    for _ in range(2):
        core.update(Sample(rtt=rtt, in_flight=1, dropped=False))
    assert not core.probing


@given(gradients().filter(lambda g: g.min_limit == 1), rtts, st.floats(2.0, 50.0))
def test_a_start_under_overload_learns_the_unqueued_latency(
    policy: Gradient, rtt: float, queued: float
) -> None:
    """The first samples come from calls one at a time: queued windows do not count.

    A process started under full load first measures calls that ran alone, then
    runs at `initial_limit`; windows still holding more calls in flight are skipped.
    """
    core = policy.start()
    assert 1 == core.limit
    core.update(Sample(rtt=rtt * queued, in_flight=policy.initial_limit + 1, dropped=False))
    assert math.isnan(core.baseline)
    probe(core, rtt)
    assert rtt == core.baseline
    assert policy.initial_limit == core.limit


def cpu_bound(limit: float, alone: float, cpu: float) -> float:
    """The mean RTT of `int(limit)` calls at once that each burn `cpu` of one core.

    `alone`: a call's RTT when it runs by itself (CPU plus I/O). Past the calls that
    keep the core busy (`alone / cpu`) every extra call only queues for the CPU.
    """
    return max(alone, int(limit) * cpu)


@settings(deadline=None)  # 300 updates: slow on a busy machine, not stuck
@given(st.floats(1e-3, 1.0), st.floats(1.0, 3.0), st.floats(1.0, 2.0))
def test_gradient_settles_just_past_the_calls_that_keep_the_cpu_busy(
    cpu: float, io_share: float, tolerance: float
) -> None:
    """On a CPU-bound service the limit ends between the knee and `tolerance` x the knee.

    The knee is `alone / cpu` calls: fewer leave the core idle while calls wait on
    I/O; more only queue. (Gradient2's headroom after scaling would hold it sqrt(limit)
    further up, and latency with it.)
    """
    alone = cpu * io_share
    policy = Gradient(initial_limit=50, tolerance=tolerance, probe_every=10_000)
    core = policy.start()
    probe(core, alone)
    limits = []
    for _ in range(300):
        rtt = cpu_bound(core.limit, alone, cpu)
        limits.append(core.update(Sample(rtt=rtt, in_flight=int(core.limit), dropped=False)))
    knee = alone / cpu
    settled = limits[-100:]
    assert min(settled) >= knee - 1
    assert max(settled) <= tolerance * knee + 2  # latency: tolerance x alone, + 2 calls' CPU


@given(gradients(), rtts, st.integers(1, 50))
def test_gradient_grows_a_used_limit_while_latency_is_flat(
    policy: Gradient, rtt: float, rounds: int
) -> None:
    """At constant latency with the limit in use, the limit never falls between probes."""
    core = policy.start()
    probe(core, rtt)
    for _ in range(rounds):
        before = core.limit
        after = core.update(Sample(rtt=rtt, in_flight=math.ceil(before), dropped=False))
        if core.probing:
            break
        assert after >= before
        if before < policy.max_limit and policy.headroom != 0:
            assert after > before


@given(gradients(), rtts, rtts)
def test_gradient_learns_only_the_fastest_latency_from_an_unused_limit(
    policy: Gradient, first: float, second: float
) -> None:
    """Under half the limit in flight: the limit stays; the baseline only falls to a faster RTT."""
    core = policy.start()
    probe(core, first)
    limit = core.limit
    idle = math.ceil(limit / 2) - 1
    assert limit == core.update(Sample(rtt=second, in_flight=idle, dropped=False))
    assert min(first, second) == core.baseline


@given(rtts, st.floats(3.0, 10.0))
def test_gradient_does_not_drift_up_under_sustained_overload(base: float, factor: float) -> None:
    """Queued samples never raise the baseline, so the limit cannot creep back up."""
    core = Gradient(initial_limit=100, patience=100).start()
    probe(core, base)
    limits = []
    for _ in range(50):
        core.update(Sample(rtt=base * factor * 1.5, in_flight=math.ceil(core.limit), dropped=False))
        limits.append(core.limit)
    assert base == core.baseline
    assert limits == sorted(limits, reverse=True)


def test_gradient_learns_a_slower_service_when_shedding_cannot_help() -> None:
    """Latency over twice the tolerated for `patience` samples: a probe measures it anew.

    (A dependency got slower; shedding more would not bring latency down.)
    """
    core = Gradient(initial_limit=16, patience=3).start()
    probe(core, 0.01)
    for _ in range(3):
        core.update(Sample(rtt=0.1, in_flight=math.ceil(core.limit), dropped=False))
    assert core.probing
    resumed = core.update(Sample(rtt=0.1, in_flight=1, dropped=False))
    assert 1 == resumed  # still probing
    resumed = core.update(Sample(rtt=0.1, in_flight=1, dropped=False))
    assert 0.1 == core.baseline
    assert 1 < resumed < 16  # back where the slow samples had brought it
    assert core.update(Sample(rtt=0.1, in_flight=math.ceil(resumed), dropped=False)) > resumed


def test_gradient_learns_a_little_slower_service_once_the_limit_hits_its_floor() -> None:
    """Slower than tolerated, not twice: the limit falls to `min_limit`, then a probe runs.

    Without it the limit would stay at its floor until the next periodic probe.
    """
    core = Gradient(initial_limit=8, patience=3, probe_every=10_000).start()
    probe(core, 0.01)
    for _ in range(100):
        core.update(Sample(rtt=0.02, in_flight=math.ceil(core.limit), dropped=False))
        if core.probing:
            break
    assert core.probing
    probe(core, 0.02)
    assert 0.02 == core.baseline


def test_gradient_probes_again_every_probe_every_samples() -> None:
    """The baseline follows a lasting change even when latency stays tolerated."""
    core = Gradient(initial_limit=10, probe_every=20).start()
    probe(core, 0.01)
    for _ in range(19):
        core.update(Sample(rtt=0.012, in_flight=math.ceil(core.limit), dropped=False))
        assert not core.probing
    limit = core.update(Sample(rtt=0.012, in_flight=math.ceil(core.limit), dropped=False))
    assert core.probing
    assert 1 == limit
    probe(core, 0.011)
    assert 0.011 == core.baseline


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
        ({"probe_every": 0}, "probe_every must be an int >= 1"),
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
