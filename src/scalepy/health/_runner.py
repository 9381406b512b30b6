"""`CheckRunner`: run checks concurrently, each within its timeout; cache and share results.

Results are cached per check: a passing result for `pass_ttl` seconds, a warning or
failure for `fail_ttl`, so a failing dependency is looked at again sooner. Probes
arriving while results are fresh get the cached report object itself (the same
object until something is re-run, so the HTTP layer can reuse its encoded body).
Probes arriving while a refresh runs wait for that refresh: a probe storm causes
one execution of each check.

A probe that outlives its timeout is cancelled and reported as failed at the
deadline; it is not waited for, so a probe that ignores cancellation delays
nothing. It finishes in the background and `aclose()` collects it.

What a failure shows is allow-listed: the exception's class name (`OSError`,
`BackendUnavailable`), "timed out after 1 s" or another fixed phrase, never the
text of the exception, which is a driver's and may quote a URL, a header or a
query. The text goes to the `scalepy.health` log instead, once per outage of a
check (when it starts failing), with secrets masked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scalepy.backends._masking import redact
from scalepy.health._check import Observation, Status
from scalepy.health._deadline import finished_within
from scalepy.health._metrics import CHECK_DURATION, CHECK_NAME, CHECK_STATUS, STATUS
from scalepy.health._report import CheckResult, HealthReport, aggregate, clean_output, worst

if TYPE_CHECKING:
    from collections.abc import Callable

    from scalepy.clock import Clock
    from scalepy.health._check import Check
    from scalepy.telemetry import Instrumentation

__all__ = ("CheckRunner",)

_logger = logging.getLogger("scalepy.health")


class CheckRunner:
    """Runs a fixed set of checks for `Health`; see the module docstring.

    Args:
        checks: The checks, each run concurrently with the others.
        pass_ttl: Seconds a passing result is reused.
        fail_ttl: Seconds a warning or failing result is reused.
        clock: Times probes, deadlines and expiry.
        instrumentation: Where check metrics and spans go.
        wall_clock: The time of day (Unix seconds) stamped on results.
    """

    __slots__ = (
        "_checks",
        "_clock",
        "_duration",
        "_expires",
        "_expiry",
        "_fail_ttl",
        "_instrumentation",
        "_pass_ttl",
        "_refresh",
        "_report",
        "_results",
        "_runs",
        "_status",
        "_stragglers",
        "_wall_clock",
    )

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        pass_ttl: float,
        fail_ttl: float,
        clock: Clock,
        instrumentation: Instrumentation,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._checks = tuple(checks)
        self._pass_ttl = pass_ttl
        self._fail_ttl = fail_ttl
        self._clock = clock
        self._wall_clock = wall_clock
        self._instrumentation = instrumentation
        self._status = instrumentation.metric(CHECK_STATUS)
        self._duration = instrumentation.metric(CHECK_DURATION)
        self._results: list[CheckResult | None] = [None] * len(self._checks)
        self._expiry = [-math.inf] * len(self._checks)
        self._report: HealthReport | None = None
        self._expires = -math.inf
        self._refresh: asyncio.Future[HealthReport] | None = None
        self._stragglers: set[asyncio.Future[object]] = set()
        self._runs = 0

    @property
    def checks(self) -> tuple[Check, ...]:
        """The checks, in the order given."""
        return self._checks

    @property
    def runs(self) -> int:
        """How many probes were started so far."""
        return self._runs

    async def report(self) -> HealthReport:
        """Return the report over fresh results, re-running the checks whose result expired."""
        report = self._report
        if report is not None and self._clock.now() < self._expires:
            return report
        refresh = self._refresh
        if refresh is None:
            refresh = self._refresh = asyncio.ensure_future(self._refresh_expired())
            refresh.add_done_callback(self._refreshed)
        # Shielded: a probe whose client went away must not cancel the others' refresh.
        return await asyncio.shield(refresh)

    def invalidate(self) -> None:
        """Forget every cached result: the next report re-runs all checks."""
        self._expires = -math.inf
        self._expiry = [-math.inf] * len(self._checks)

    async def aclose(self, grace: float) -> None:
        """Cancel a running refresh and late probes; wait up to `grace` seconds for them."""
        pending: set[asyncio.Future[Any]] = set(self._stragglers)
        if self._refresh is not None:
            pending.add(self._refresh)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=grace)

    def _refreshed(self, refresh: asyncio.Future[HealthReport]) -> None:
        self._refresh = None
        if not refresh.cancelled():
            refresh.exception()  # retrieved here in case every waiter went away

    async def _refresh_expired(self) -> HealthReport:
        now = self._clock.now()
        expired = [index for index, expiry in enumerate(self._expiry) if now >= expiry]
        fresh = await asyncio.gather(
            *(self._run(self._checks[index], self._results[index]) for index in expired)
        )
        for index, result in zip(expired, fresh, strict=True):
            ttl = self._pass_ttl if result.status is Status.PASS else self._fail_ttl
            self._results[index] = result
            self._expiry[index] = self._clock.now() + ttl
        results = tuple(result for result in self._results if result is not None)
        report = HealthReport(status=aggregate(results), checks=results)
        self._report = report
        self._expires = min(self._expiry, default=math.inf)
        return report

    async def _run(self, check: Check, previous: CheckResult | None) -> CheckResult:
        self._runs += 1
        failing = previous is not None and previous.status is Status.FAIL
        with self._instrumentation.span("scalepy.health.check", {CHECK_NAME: check.name}) as span:
            result = await self._probe(check, self._clock.now(), log=not failing)
            span.set_attribute(STATUS, result.status.value)
        self._duration.record(
            result.duration, {CHECK_NAME: check.name, STATUS: result.status.value}
        )
        for status in Status:
            level = 1.0 if status is result.status else 0.0
            self._status.record(level, {CHECK_NAME: check.name, STATUS: status.value})
        return result

    async def _probe(self, check: Check, started: float, *, log: bool) -> CheckResult:
        try:
            task: asyncio.Future[object] = asyncio.ensure_future(check.probe())
        except Exception as exc:  # the probe raised before awaiting, or is not async
            return self._failed(check, started, _cause(exc, check, log=log))
        try:
            done = await finished_within(task, check.timeout, self._clock)
        except BaseException:
            task.cancel()
            raise
        if not done:
            task.cancel()
            self._stragglers.add(task)
            task.add_done_callback(self._forget)
            return self._failed(check, started, f"timed out after {check.timeout:g} s")
        if task.cancelled():
            return self._failed(check, started, "the probe was cancelled")
        error = task.exception()
        if error is not None:
            return self._failed(check, started, _cause(error, check, log=log))
        try:
            observations = _observations(task.result())
        except TypeError as exc:
            return self._failed(check, started, str(exc))  # our own text, naming a type
        return CheckResult(
            check=check,
            status=worst(observation.status for observation in observations),
            observations=observations,
            duration=self._clock.now() - started,
            time=self._wall_clock(),
        )

    def _failed(self, check: Check, started: float, error: str) -> CheckResult:
        return CheckResult(
            check=check,
            status=Status.FAIL,
            error=clean_output(error),
            duration=self._clock.now() - started,
            time=self._wall_clock(),
        )

    def _forget(self, task: asyncio.Future[object]) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()  # a late probe's outcome is of no interest any more

    def __repr__(self) -> str:
        return f"<CheckRunner checks={len(self._checks)} runs={self._runs}>"


def _cause(exc: BaseException, check: Check, *, log: bool) -> str:
    """What a body shows of a probe's exception: its class name; the text goes to the log."""
    cause = type(exc).__name__
    if log:
        _logger.warning(
            "health check %r fails: %s: %s", check.name, cause, redact(str(exc)) or "(no message)"
        )
    return cause


def _observations(value: object) -> tuple[Observation, ...]:
    """What a probe returned, as a tuple of observations; `TypeError` if it is anything else."""
    if value is None:
        return ()
    if isinstance(value, Observation):
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = tuple(value)
        if all(isinstance(item, Observation) for item in items):
            return items
    raise TypeError(
        f"the probe returned a value of type {type(value).__name__!r}; expected None, an "
        "Observation or a list of them"
    )
