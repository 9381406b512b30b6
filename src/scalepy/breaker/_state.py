"""The circuit breaker's pure state machine: resilience4j semantics, time passed in.

Nothing here reads a clock, awaits or locks: every operation takes `now`
(seconds on any monotonic scale) and the caller supplies durations. The async
shell in `scalepy.breaker._breaker` reads the clock around each call and feeds
the outcomes in; a shared (Redis) layer can read the public fields (`state`,
`generation`, `window`, `opened_at`, `open_wait`), flush them and adopt a remote
state with `transition_to()`.

```
          failure or slow rate >= threshold
 CLOSED ───────────────────────────────────> OPEN <──────────┐
   ^                                          │ open_wait    │ trials fail
   │ trials pass                              v elapsed      │ (wait grows)
   └─────────────────────────────────────  HALF_OPEN ────────┘

 DISABLED (lets everything through, records nothing) and FORCED_OPEN (rejects
 everything) are entered and left only explicitly.
```
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from scalepy._validation import check_finite, check_int
from scalepy.breaker._window import CountWindow, OutcomeWindow, TimeWindow
from scalepy.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("BreakerConfig", "BreakerCore", "BreakerState", "WindowType")

WindowType = Literal["count", "time"]
"""`"count"`: the last `window_size` calls; `"time"`: the calls of the last `window_size` s."""


class BreakerState(enum.Enum):
    """The states of a circuit breaker; `label` names them in metrics and events."""

    CLOSED = 0
    """Calls run and their outcomes are judged over the sliding window."""
    OPEN = 1
    """Calls are rejected until the wait in OPEN has passed."""
    HALF_OPEN = 2
    """A limited number of trial calls run; their outcomes decide OPEN or CLOSED."""
    DISABLED = 3
    """Calls always run and nothing is recorded; left only explicitly."""
    FORCED_OPEN = 4
    """Calls are always rejected; left only explicitly."""

    @property
    def label(self) -> str:
        """The lowercase name used in metric labels and events, e.g. `half_open`."""
        return self.name.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """When a circuit breaker opens, how long it stays open and how it probes recovery.

    Raises:
        ConfigurationError: If a field holds a value that is not allowed; the
            message says what is.
    """

    failure_rate_threshold: float = 0.5
    """Open when at least this fraction of the calls in the window failed; in (0, 1]."""
    slow_call_rate_threshold: float = 1.0
    """Open when at least this fraction of the calls in the window was slow; in (0, 1]."""
    slow_call_duration: float = 60.0
    """A call taking longer than this many seconds is slow; > 0."""
    minimum_calls: int = 20
    """The window is judged only once it holds at least this many calls; >= 1."""
    window_type: WindowType = "count"
    """Whether the window spans a number of calls or a number of seconds."""
    window_size: int = 100
    """Calls (count window) or seconds (time window) in the window; >= 1."""
    open_for: float = 30.0
    """Seconds the breaker stays OPEN before letting trial calls through; > 0."""
    open_for_max: float | None = None
    """The longest wait in OPEN once it grows; required when `backoff` > 1."""
    backoff: float = 1.0
    """Factor the wait in OPEN grows by after each failed half-open trial; 1 keeps it fixed."""
    permitted_calls_in_half_open: int = 5
    """Trial calls let through in HALF_OPEN (at once or in turn); >= 1."""
    max_wait_in_half_open: float | None = None
    """Seconds HALF_OPEN may wait for its trials before opening again; `None` waits forever."""

    def __post_init__(self) -> None:
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigurationError(f"{name} must be in (0, 1], got {value!r}")
        for name in ("slow_call_duration", "open_for"):
            check_finite(name, getattr(self, name))
        if self.max_wait_in_half_open is not None:
            check_finite("max_wait_in_half_open", self.max_wait_in_half_open)
        for name in ("minimum_calls", "window_size", "permitted_calls_in_half_open"):
            check_int(name, getattr(self, name))
        if self.window_type not in get_args(WindowType):
            raise ConfigurationError(
                f"window_type must be 'count' or 'time', got {self.window_type!r}"
            )
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ConfigurationError(
                f"minimum_calls ({self.minimum_calls}) must be <= window_size "
                f"({self.window_size}) for a count window, or the breaker could never open"
            )
        self._check_wait()

    def _check_wait(self) -> None:
        if not (math.isfinite(self.backoff) and self.backoff >= 1):
            raise ConfigurationError(f"backoff must be a finite number >= 1, got {self.backoff!r}")
        if self.open_for_max is None:
            if self.backoff > 1:
                raise ConfigurationError(
                    "open_for_max is required when backoff > 1, to cap the growing wait in OPEN"
                )
        elif not (math.isfinite(self.open_for_max) and self.open_for_max >= self.open_for):
            raise ConfigurationError(
                f"open_for_max must be a finite number >= open_for ({self.open_for!r}), "
                f"got {self.open_for_max!r}"
            )

    def new_window(self) -> OutcomeWindow:
        """Return an empty window of the configured type and size.

        Returns:
            A `CountWindow` or a `TimeWindow`.
        """
        if self.window_type == "time":
            return TimeWindow(self.window_size)
        return CountWindow(self.window_size)


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_DISABLED = BreakerState.DISABLED
_FORCED_OPEN = BreakerState.FORCED_OPEN


class BreakerCore:
    """The state machine of one circuit breaker, driven by `now` and outcomes passed in.

    Each transition increments `generation` and calls `on_transition(from, to,
    now)`. An outcome recorded with the generation read when its call was
    admitted is dropped if the breaker has changed state since, so a slow call
    admitted while CLOSED never counts as a half-open trial.

    Args:
        config: The thresholds and waits.
        on_transition: Called after every transition, e.g. to emit events.

    Attributes:
        config: The thresholds and waits.
        state: The current state.
        generation: Incremented on every transition; a version for compare-and-set.
        window: The outcomes being judged: the sliding window in CLOSED (kept
            unchanged while OPEN), the trial calls in HALF_OPEN.
        opened_at: When the breaker last entered OPEN.
        open_wait: Seconds the current (or next) OPEN period lasts.
        half_opened_at: When the breaker last entered HALF_OPEN.
        in_flight: Half-open trial calls admitted and not yet recorded or released.
        rejected: Calls rejected so far.
        transitions: Transitions so far.
    """

    __slots__ = (
        "_on_transition",
        "_slow_call_duration",
        "config",
        "generation",
        "half_opened_at",
        "in_flight",
        "open_wait",
        "opened_at",
        "rejected",
        "state",
        "transitions",
        "window",
    )

    def __init__(
        self,
        config: BreakerConfig,
        *,
        on_transition: Callable[[BreakerState, BreakerState, float], None] | None = None,
    ) -> None:
        self.config = config
        self._on_transition = on_transition
        self._slow_call_duration = config.slow_call_duration
        self.state = _CLOSED
        self.generation = 0
        self.window = config.new_window()
        self.opened_at = -math.inf
        self.open_wait = config.open_for
        self.half_opened_at = -math.inf
        self.in_flight = 0
        self.rejected = 0
        self.transitions = 0

    def acquire(self, now: float) -> bool:
        """Ask to run one call; a rejected call must not run.

        OPEN moves to HALF_OPEN once its wait has passed; HALF_OPEN moves back
        to OPEN once `max_wait_in_half_open` has passed. In HALF_OPEN, at most
        `permitted_calls_in_half_open` trials are admitted (running or completed);
        a released trial frees its permit.

        Args:
            now: The current time.

        Returns:
            Whether the call may run. After `False`, `retry_after(now)` says when
            to try again.
        """
        state = self.state
        if state is _CLOSED or state is _DISABLED:
            return True
        if state is _OPEN:
            if now < self.opened_at + self.open_wait:
                self.rejected += 1
                return False
            self._transition(_HALF_OPEN, now)
        elif state is _FORCED_OPEN:
            self.rejected += 1
            return False
        config = self.config
        wait = config.max_wait_in_half_open
        if wait is not None and now - self.half_opened_at >= wait:
            self._open(now, grow=True)
            self.rejected += 1
            return False
        if self.in_flight + self.window.calls < config.permitted_calls_in_half_open:
            self.in_flight += 1
            return True
        self.rejected += 1
        return False

    def record(
        self, now: float, duration: float, failed: bool, generation: int | None = None
    ) -> None:
        """Record the outcome of an admitted call, which may change the state.

        In CLOSED, once the window holds at least `minimum_calls` calls, a
        failure rate or slow-call rate at or above its threshold opens the
        breaker. In HALF_OPEN, once every permitted trial has completed, the
        same rates over the trials reopen it (with a grown wait) or close it.
        Outcomes are dropped in the other states, and when `generation` is given
        and no longer current.

        Args:
            now: When the call ended.
            duration: How long the call took, in seconds.
            failed: Whether it counts as a failure.
            generation: The `generation` read when the call was admitted.
        """
        if generation != self.generation and generation is not None:
            return
        state = self.state
        if state is _CLOSED:
            window = self.window
            if (
                window.record(now, failed, duration > self._slow_call_duration)
                and window.calls >= self.config.minimum_calls
                and self._tripped(window)
            ):
                self._open(now, grow=False)
        elif state is _HALF_OPEN:
            if self.in_flight:
                self.in_flight -= 1
            window = self.window
            window.record(now, failed, duration > self._slow_call_duration)
            if window.calls >= self.config.permitted_calls_in_half_open:
                if self._tripped(window):
                    self._open(now, grow=True)
                else:
                    self._transition(_CLOSED, now)

    def release(self, generation: int | None = None) -> None:
        """Forget an admitted call whose outcome is ignored, freeing its half-open permit.

        Args:
            generation: The `generation` read when the call was admitted; a stale
                one releases nothing.
        """
        if generation is not None and generation != self.generation:
            return
        if self.state is _HALF_OPEN and self.in_flight:
            self.in_flight -= 1

    def update(self, now: float) -> BreakerState:
        """Apply the transitions that the passing of time alone causes.

        OPEN becomes HALF_OPEN once its wait has passed, and HALF_OPEN becomes
        OPEN once `max_wait_in_half_open` has passed.

        Args:
            now: The current time.

        Returns:
            The state at `now`.
        """
        state = self.state
        if state is _OPEN and now >= self.opened_at + self.open_wait:
            self._transition(_HALF_OPEN, now)
        elif state is _HALF_OPEN:
            wait = self.config.max_wait_in_half_open
            if wait is not None and now - self.half_opened_at >= wait:
                self._open(now, grow=True)
        return self.state

    def retry_after(self, now: float) -> float:
        """Return how long a rejected caller should wait before trying again.

        Args:
            now: The current time.

        Returns:
            The rest of the wait in OPEN; 0.0 in every other state (in HALF_OPEN
            a permit may free up at any moment, FORCED_OPEN has no end).
        """
        if self.state is _OPEN:
            return max(0.0, self.opened_at + self.open_wait - now)
        return 0.0

    def transition_to(self, state: BreakerState, now: float) -> bool:
        """Move to `state` explicitly, e.g. to force it open or adopt a shared state.

        Entering CLOSED starts a fresh window and resets the wait in OPEN;
        entering HALF_OPEN starts a fresh trial; entering OPEN starts a wait of
        the current length (it grows only when half-open trials fail).

        Args:
            state: The state to move to.
            now: The current time.

        Returns:
            Whether the state changed (`False` if already in `state`).
        """
        if state is self.state:
            return False
        self._transition(state, now)
        return True

    def reset(self, now: float) -> None:
        """Return to CLOSED with an empty window and the initial wait in OPEN.

        Args:
            now: The current time.
        """
        if self.state is _CLOSED:
            self.window = self.config.new_window()
        else:
            self._transition(_CLOSED, now)

    def _tripped(self, window: OutcomeWindow) -> bool:
        calls = window.calls
        config = self.config
        return (
            window.failures / calls >= config.failure_rate_threshold
            or window.slow_calls / calls >= config.slow_call_rate_threshold
        )

    def _open(self, now: float, *, grow: bool) -> None:
        if grow:
            config = self.config
            cap = config.open_for if config.open_for_max is None else config.open_for_max
            self.open_wait = min(self.open_wait * config.backoff, cap)
        self._transition(_OPEN, now)

    def _transition(self, state: BreakerState, now: float) -> None:
        previous = self.state
        self.state = state
        self.generation += 1
        self.transitions += 1
        self.in_flight = 0
        if state is _CLOSED:
            self.window = self.config.new_window()
            self.open_wait = self.config.open_for
        elif state is _OPEN:
            self.opened_at = now
        elif state is _HALF_OPEN:
            self.window = CountWindow(self.config.permitted_calls_in_half_open)
            self.half_opened_at = now
        if self._on_transition is not None:
            self._on_transition(previous, state, now)

    def __repr__(self) -> str:
        return (
            f"BreakerCore(state={self.state.label}, generation={self.generation}, "
            f"window={self.window!r})"
        )
