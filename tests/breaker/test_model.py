"""Model-based test: the pure core never diverges from a naive reference model.

The reference keeps every outcome in plain lists and recomputes the window from
scratch (the last N outcomes, or those of the last N whole seconds) each time it
needs it; the wait in OPEN is the closed form `min(open_for * backoff**k, cap)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from scalepy.breaker import BreakerConfig, BreakerState

# The pure core, tested directly against a naive model.
from scalepy.breaker._state import BreakerCore, WindowType

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DISABLED = BreakerState.DISABLED
FORCED_OPEN = BreakerState.FORCED_OPEN

SLOW_CALL_DURATION = 1.0


@st.composite
def configs(draw: st.DrawFn) -> BreakerConfig:
    """Small configurations whose waits multiply exactly in binary floating point."""
    window_type: WindowType = "time" if draw(st.booleans()) else "count"
    window_size = draw(st.integers(1, 6))
    minimum_cap = window_size if window_type == "count" else 8
    backoff = draw(st.sampled_from([1.0, 1.5, 2.0]))
    open_for = draw(st.sampled_from([1.0, 2.5, 10.0]))
    return BreakerConfig(
        failure_rate_threshold=draw(st.sampled_from([0.25, 0.5, 1 / 3, 0.75, 1.0])),
        slow_call_rate_threshold=draw(st.sampled_from([0.5, 2 / 3, 1.0])),
        slow_call_duration=SLOW_CALL_DURATION,
        minimum_calls=draw(st.integers(1, minimum_cap)),
        window_type=window_type,
        window_size=window_size,
        open_for=open_for,
        open_for_max=None if backoff == 1.0 else open_for * draw(st.sampled_from([1.0, 3.0, 8.0])),
        backoff=backoff,
        permitted_calls_in_half_open=draw(st.integers(1, 4)),
        max_wait_in_half_open=draw(st.sampled_from([None, 2.0, 7.5])),
    )


@dataclass
class Reference:
    """The obviously-correct model: lists of outcomes, everything recomputed."""

    config: BreakerConfig
    state: BreakerState = CLOSED
    generation: int = 0
    judged: list[tuple[float, bool, bool]] = field(default_factory=list)
    trial: bool = False  # whether `judged` holds half-open trials
    in_flight: int = 0
    opened_at: float = -math.inf
    half_opened_at: float = -math.inf
    failed_trials: int = 0  # HALF_OPEN -> OPEN since the last close
    rejected: int = 0
    transitions: list[tuple[BreakerState, BreakerState]] = field(default_factory=list)

    @property
    def open_wait(self) -> float:
        """The wait in OPEN, in closed form."""
        config = self.config
        wait = config.open_for * config.backoff**self.failed_trials
        return min(wait, config.open_for if config.open_for_max is None else config.open_for_max)

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        """The outcomes being judged at `now`."""
        size = self.config.window_size
        if self.trial:
            return list(self.judged)
        if self.config.window_type == "count":
            return self.judged[-size:]
        return [o for o in self.judged if math.floor(o[0]) >= math.floor(now) - size + 1]

    def tripped(self, outcomes: list[tuple[float, bool, bool]]) -> bool:
        """Whether the failure or slow-call rate reaches its threshold."""
        failures = sum(1 for _, failed, _ in outcomes if failed)
        slow = sum(1 for _, _, is_slow in outcomes if is_slow)
        return (
            failures / len(outcomes) >= self.config.failure_rate_threshold
            or slow / len(outcomes) >= self.config.slow_call_rate_threshold
        )

    def move(self, state: BreakerState, now: float) -> None:
        """Transition, with the bookkeeping each state starts with."""
        self.transitions.append((self.state, state))
        self.state = state
        self.generation += 1
        self.in_flight = 0
        if state is CLOSED:
            self.judged, self.trial, self.failed_trials = [], False, 0
        elif state is OPEN:
            self.opened_at = now
        elif state is HALF_OPEN:
            self.judged, self.trial, self.half_opened_at = [], True, now

    def reopen(self, now: float) -> None:
        """A half-open round failed: open with a longer wait."""
        self.failed_trials += 1
        self.move(OPEN, now)

    def acquire(self, now: float) -> bool:
        """Admit or reject one call."""
        if self.state in (CLOSED, DISABLED):
            return True
        if self.state is FORCED_OPEN or (
            self.state is OPEN and now < self.opened_at + self.open_wait
        ):
            self.rejected += 1
            return False
        if self.state is OPEN:
            self.move(HALF_OPEN, now)
        wait = self.config.max_wait_in_half_open
        if wait is not None and now - self.half_opened_at >= wait:
            self.reopen(now)
            self.rejected += 1
            return False
        if self.in_flight + len(self.judged) < self.config.permitted_calls_in_half_open:
            self.in_flight += 1
            return True
        self.rejected += 1
        return False

    def record(self, now: float, duration: float, failed: bool, generation: int) -> None:
        """Judge one outcome."""
        if generation != self.generation or self.state not in (CLOSED, HALF_OPEN):
            return
        self.judged.append((now, failed, duration > SLOW_CALL_DURATION))
        if self.state is CLOSED:
            window = self.window(now)
            if len(window) >= self.config.minimum_calls and self.tripped(window):
                self.move(OPEN, now)
            return
        self.in_flight = max(0, self.in_flight - 1)
        if len(self.judged) >= self.config.permitted_calls_in_half_open:
            if self.tripped(self.judged):
                self.reopen(now)
            else:
                self.move(CLOSED, now)

    def release(self, generation: int) -> None:
        """Free the permit of an ignored call."""
        if generation == self.generation and self.state is HALF_OPEN:
            self.in_flight = max(0, self.in_flight - 1)

    def update(self, now: float) -> None:
        """Apply the transitions time alone causes."""
        if self.state is OPEN and now >= self.opened_at + self.open_wait:
            self.move(HALF_OPEN, now)
        elif self.state is HALF_OPEN:
            wait = self.config.max_wait_in_half_open
            if wait is not None and now - self.half_opened_at >= wait:
                self.reopen(now)


steps = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5, 7.5, 10.0, 30.0]),
    st.floats(0.0, 40.0, allow_nan=False),
)
durations = st.one_of(
    st.sampled_from([0.0, SLOW_CALL_DURATION, 2.0]), st.floats(0.0, 3.0, allow_nan=False)
)


class CoreMatchesReference(RuleBasedStateMachine):
    """Random admissions, outcomes, clock steps and explicit transitions."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.pending: list[int] = []  # generations of admitted, unfinished calls
        self.events: list[tuple[BreakerState, BreakerState]] = []

    @initialize(config=configs(), start=st.sampled_from([0.0, 0.5, 1e6 + 0.75]))
    def build(self, config: BreakerConfig, start: float) -> None:
        """Start both at the same time with the same configuration."""
        self.now = start
        self.core = BreakerCore(config, on_transition=lambda a, b, _now: self.events.append((a, b)))
        self.reference = Reference(config)

    @rule(step=steps)
    def advance(self, step: float) -> None:
        """Move the clock forward."""
        self.now += step

    @rule()
    def acquire(self) -> None:
        """Ask both to admit a call."""
        admitted = self.core.acquire(self.now)
        assert self.reference.acquire(self.now) == admitted
        if admitted:
            self.pending.append(self.core.generation)

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), duration=durations, failed=st.booleans(), ignored=st.booleans())
    def finish(self, data: st.DataObject, duration: float, failed: bool, ignored: bool) -> None:
        """End one admitted call: record its outcome, or release it as ignored."""
        generation = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        if ignored:
            self.core.release(generation)
            self.reference.release(generation)
        else:
            self.core.record(self.now, duration, failed, generation)
            self.reference.record(self.now, duration, failed, generation)

    @rule()
    def update(self) -> None:
        """Let time alone act."""
        self.core.update(self.now)
        self.reference.update(self.now)

    @rule(state=st.sampled_from(list(BreakerState)))
    def transition_to(self, state: BreakerState) -> None:
        """Move both explicitly."""
        changed = self.core.transition_to(state, self.now)
        assert (state is not self.reference.state) == changed
        if changed:
            self.reference.move(state, self.now)

    @rule()
    def reset(self) -> None:
        """Reset both."""
        self.core.reset(self.now)
        if self.reference.state is CLOSED:
            self.reference.judged = []
        else:
            self.reference.move(CLOSED, self.now)

    @invariant()
    def agree(self) -> None:
        """State, window, permits, waits and counters are the same."""
        core, reference = self.core, self.reference
        assert reference.state == core.state
        assert reference.generation == core.generation
        assert reference.in_flight == core.in_flight
        assert reference.rejected == core.rejected
        assert reference.open_wait == core.open_wait
        assert reference.transitions == self.events
        assert len(reference.transitions) == core.transitions
        core.window.advance(self.now)
        window = reference.window(self.now)
        assert (
            len(window),
            sum(1 for o in window if o[1]),
            sum(1 for o in window if o[2]),
        ) == (core.window.calls, core.window.failures, core.window.slow_calls)
        expected_retry = (
            max(0.0, reference.opened_at + reference.open_wait - self.now)
            if reference.state is OPEN
            else 0.0
        )
        assert expected_retry == core.retry_after(self.now)


CoreMatchesReference.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
test_core_matches_reference = CoreMatchesReference.TestCase
