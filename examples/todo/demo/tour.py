"""The scripted tour: each step drives one primitive through nginx and checks what it did.

A step returns the figure that shows the primitive at work, or raises `StepFailed`
saying what it saw instead; the summary is one line per step. Steps that need nginx
and several replicas are left out in single-process mode.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from demo.processes import ChildFailed

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from prometheus_client.samples import Sample

    from demo.stack import Stack

__all__ = ("Result", "StepFailed", "Tour")

_STEP_TIMEOUT = 30.0
_POLL = 0.05
_WRITE = "todos:write"


@dataclass(frozen=True)
class Result:
    """What one step showed."""

    step: str
    ok: bool
    figure: str


class StepFailed(Exception):
    """A step saw something other than what the primitive promises."""


def expect(condition: bool, message: str) -> None:
    """Fail the step with `message` unless `condition` holds."""
    if not condition:
        raise StepFailed(message)


class Tour:
    """The steps, run in order against a started `Stack`."""

    def __init__(self, stack: Stack, client: httpx.AsyncClient) -> None:
        self.stack = stack
        self.client = client
        self._request_ids = (f"tour-{number}" for number in itertools.count(1))
        self._token = ""
        self._todo: dict[str, Any] = {}
        self._missing_ids = itertools.count(2_000_000_000)

    def steps(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        """The steps, in order: (name, coroutine function returning the figure)."""
        steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("create", self.create),
            ("cache", self.cache),
            ("read after write", self.read_after_write),
            ("job", self.job),
            ("rate limit", self.rate_limit),
            ("breaker", self.breaker),
            ("health", self.health),
            ("metrics", self.metrics),
        ]
        if not self.stack.options.single:
            steps.insert(2, ("replicas", self.replicas))
        return steps

    async def run(self, report: Callable[[Result], None]) -> list[Result]:
        """Run every step (a failed one does not stop the others), reporting each result."""
        results = []
        for name, step in self.steps():
            try:
                figure = await asyncio.wait_for(step(), _STEP_TIMEOUT)
                result = Result(name, True, figure)
            except (StepFailed, ChildFailed) as exc:
                result = Result(name, False, str(exc))
            except TimeoutError:
                result = Result(name, False, f"no result within {_STEP_TIMEOUT:g} s")
            except (httpx.HTTPError, asyncpg.PostgresError, OSError, KeyError, ValueError) as exc:
                result = Result(name, False, f"{type(exc).__name__}: {exc}")
            report(result)
            results.append(result)
        return results

    # ------------------------------------------------------------------ steps

    async def create(self) -> str:
        """POST /todos: 401 without a token, 201 + Location + absolute url with one."""
        todo = {"title": "Try the scalepy demo", "description": "created by the tour", "order": 1}
        anonymous = await self._request("POST", "/todos", json=todo)
        expect(anonymous.status_code == 401, f"without a token: {_status(anonymous)}, not 401")
        self._token = await self.stack.mint_token(_WRITE)
        created = await self._request("POST", "/todos", json=todo, auth=True)
        expect(created.status_code == 201, f"POST /todos: {_status(created)}, not 201")
        self._todo = created.json()
        location = created.headers.get("Location", "")
        expected_url = f"{self.stack.base_url}/todos/{self._todo['id']}"
        expect(
            self._todo.get("url") == expected_url and location.endswith(f"/todos/{self.todo_id}"),
            f"url {self._todo.get('url')!r}, Location {location!r}; expected {expected_url}",
        )
        return f"201, url {expected_url} (401 without a JWT; token from python -m todo token)"

    async def cache(self) -> str:
        """GET the todo twice per replica: one miss at most, every other read a hit."""
        reads = 2 * max(1, len(self.stack.replicas))
        before = await self._cache_requests()
        for _ in range(reads):
            response = await self._request("GET", f"/todos/{self.todo_id}")
            expect(response.status_code == 200, f"GET the todo: {_status(response)}")
        after = await self._cache_requests()
        seen = {key: after[key] - before.get(key, 0) for key in after}
        hits = sum(count for (result, _), count in seen.items() if result == "hit")
        misses = sum(count for (result, _), count in seen.items() if result == "miss")
        tiers = ", ".join(
            f"{tier} {count:g}" for (result, tier), count in sorted(seen.items())
            if result == "hit" and count
        )  # fmt: skip
        expect(
            hits >= reads - 1,
            f"{reads} reads: {hits:g} cache hits, {misses:g} misses (expected >= {reads - 1} hits)",
        )
        return (
            f"{reads} reads of the todo: {hits:g} from the cache ({tiers}), "
            f"{misses:g} from PostgreSQL (scalepy_cache_requests_total)"
        )

    async def replicas(self) -> str:
        """The same read, several times: nginx spreads it over every replica."""
        served = collections.Counter[str]()
        for _ in range(2 * len(self.stack.replicas)):
            response = await self._request("GET", f"/todos/{self.todo_id}")
            expect(response.status_code == 200, f"GET the todo: {_status(response)}")
            served[await self._replica(response)] += 1
        spread = ", ".join(f"{name} x{count}" for name, count in sorted(served.items()))
        expect(
            set(served) == set(self.stack.replicas),
            f"answered by {spread} only, not by every replica",
        )
        return f"{sum(served.values())} reads answered by {spread} (nginx least_conn)"

    async def read_after_write(self) -> str:
        """PATCH, then read it from every replica: none serves the old title."""
        title = "Try the scalepy demo (edited)"
        patched = await self._request(
            "PATCH", f"/todos/{self.todo_id}", json={"title": title, "completed": True}, auth=True
        )
        expect(patched.status_code == 200, f"PATCH: {_status(patched)}, not 200")
        replicas = self._processes()
        fresh = []
        for name, socket in replicas.items():
            async with self._direct(socket) as direct:
                read = await direct.get(f"/todos/{self.todo_id}")
            if read.status_code == 200 and read.json().get("title") == title:
                fresh.append(name)
        expect(
            len(fresh) == len(replicas),
            f"after PATCH only {fresh} read the new title, of {sorted(replicas)}",
        )
        return (
            f"PATCH, then GET on {', '.join(fresh)}: {len(fresh)}/{len(replicas)} "
            "read the new title at once (tag invalidation)"
        )

    async def job(self) -> str:
        """The POST enqueued a notification job; the worker ran it once."""
        if not self.stack.options.single:
            self.stack.child("worker").check_running()
        deadline = time.monotonic() + 10.0
        connection = await asyncpg.connect(self.stack.database_url)
        try:
            while True:
                rows = await connection.fetch(
                    """SELECT n.job_id, extract(epoch FROM n.sent_at - t.created_at) AS after
                       FROM notifications n JOIN todos t ON t.id = n.todo_id
                       WHERE n.todo_id = $1""",
                    self.todo_id,
                )
                if rows or time.monotonic() > deadline:
                    break
                await asyncio.sleep(_POLL)  # the worker writes it: nothing to await here
        finally:
            await connection.close()
        expect(len(rows) == 1, f"{len(rows)} notifications for todo {self.todo_id}, not 1")
        who = "the app's own worker" if self.stack.options.single else "the worker"
        return (
            f"notification for todo {self.todo_id} recorded once by {who} "
            f"{float(rows[0]['after']):.2f} s after the POST (job {rows[0]['job_id'][:8]})"
        )

    async def rate_limit(self) -> str:
        """Writes in a burst: 429 with RateLimit headers and Retry-After once over the limit."""
        for attempt in range(1, 201):
            response = await self._request(
                "PATCH", f"/todos/{self.todo_id}", json={"order": attempt}, auth=True
            )
            if response.status_code != 200:
                break
        expect(response.status_code == 429, f"write {attempt}: {_status(response)}, not 429")
        headers = response.headers
        missing = [
            name for name in ("RateLimit", "RateLimit-Policy", "Retry-After") if name not in headers
        ]
        expect(not missing, f"429 without {', '.join(missing)}")
        expect(
            headers.get("Content-Type", "").startswith("application/problem+json"),
            f"429 body is {headers.get('Content-Type')}, not problem+json",
        )
        retry_after = float(headers["Retry-After"])
        await asyncio.sleep(retry_after)  # as the server asks: the next steps write again
        return (
            f"429 at write {attempt} of a burst: Retry-After {headers['Retry-After']}, "
            f"RateLimit {headers['RateLimit']}"
        )

    async def breaker(self) -> str:
        """Cut PostgreSQL: the breaker opens (503 + Retry-After); restore it: it closes."""
        relay = self.stack.relay
        assert relay is not None
        probe = await self._request("GET", f"/todos/{next(self._missing_ids)}")
        expect(probe.status_code == 404, f"before the cut: {_status(probe)}, not 404")
        reset = relay.cut()
        try:
            attempt, opened = await self._until_breaker_opens()
            retry_after = opened.headers.get("Retry-After")
            expect(retry_after is not None, "the breaker's 503 has no Retry-After")
            # Each replica's breaker opens on its own failures or, through the state
            # they share in Redis, once the failures of all of them cross the threshold.
            while (states := await self._breaker_states()) and set(states.values()) != {"open"}:
                expect(attempt < 100, f"after {attempt} reads the breaker is {states}")
                await self._request("GET", f"/todos/{next(self._missing_ids)}")
                attempt += 1
            ready = await self._request("GET", "/health/ready")
        finally:
            relay.restore()
        started = time.monotonic()
        while any(state != "closed" for state in (await self._breaker_states()).values()):
            expect(time.monotonic() - started < 20.0, "restored: the breaker is still not closed")
            await self._request("GET", f"/todos/{next(self._missing_ids)}")  # half-open trials
            await asyncio.sleep(_POLL)
        return (
            f"cut ({reset} connections reset): 503 breaker {opened.json()['breaker']!r} "
            f"(Retry-After {retry_after}) open on {len(states)}/{len(states)} after "
            f"{attempt} reads, ready {ready.status_code}; restored: closed again "
            f"after {time.monotonic() - started:.1f} s"
        )

    async def _until_breaker_opens(self) -> tuple[int, httpx.Response]:
        """Read todos that are not cached until one answer is the breaker's 503."""
        statuses = collections.Counter[int]()
        for attempt in range(1, 101):
            response = await self._request("GET", f"/todos/{next(self._missing_ids)}")
            statuses[response.status_code] += 1
            expect(
                response.status_code < 500 or response.status_code == 503,
                f"with PostgreSQL cut: {_status(response)}",
            )
            if response.status_code == 503 and _is_breaker_open(response):
                return attempt, response
        raise StepFailed(f"no breaker-open 503 in 100 reads: {dict(statuses)}")

    async def health(self) -> str:
        """Liveness, readiness and startup pass (readiness again, after the outage)."""
        answers = []
        deadline = time.monotonic() + 10.0
        for probe in ("live", "ready", "startup"):
            while True:  # readiness results are cached briefly: after the outage, wait
                response = await self._request("GET", f"/health/{probe}")
                if response.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(_POLL)
            expect(response.status_code == 200, f"/health/{probe}: {_status(response)}")
            answers.append(f"{probe} {response.json().get('status')}")
        if not self.stack.options.single:
            drain = await self._request("POST", "/health/drain")
            expect(drain.status_code == 403, f"POST /health/drain via nginx: {_status(drain)}")
            answers.append("drain 403 at nginx")
        return ", ".join(answers)

    async def metrics(self) -> str:
        """/metrics in the Prometheus text format, with scalepy's metrics in it."""
        response = await self._request("GET", "/metrics")
        expect(response.status_code == 200, f"/metrics: {_status(response)}")
        families = list(text_string_to_metric_families(response.text))
        names = {family.name for family in families}
        scalepy = sorted({name.split("_")[1] for name in names if name.startswith("scalepy_")})
        expect(bool(scalepy), "/metrics has no scalepy_* metric")
        samples = sum(len(family.samples) for family in families)
        return f"{len(families)} families, {samples} samples; scalepy: {', '.join(scalepy)}"

    # ------------------------------------------------------------------ helpers

    @property
    def todo_id(self) -> int:
        """The id of the todo the tour created."""
        if not self._todo:
            raise StepFailed("no todo: the create step failed")
        todo_id: int = self._todo["id"]
        return todo_id

    async def _request(
        self, method: str, path: str, *, auth: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request through nginx, with an X-Request-ID nginx logs (and a token if asked)."""
        headers = {"X-Request-ID": next(self._request_ids)}
        if auth:
            headers["Authorization"] = f"Bearer {self._token}"
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def _replica(self, response: httpx.Response) -> str:
        """The replica that answered `response`, from nginx's access log (JSON lines)."""
        request_id = response.request.headers["X-Request-ID"]
        log = self.stack.nginx_log
        assert log is not None
        deadline = time.monotonic() + 2.0
        while True:  # nginx writes the line as the response ends: it may lag a moment
            for line in reversed(log.read_text(errors="replace").splitlines()):
                if request_id in line:
                    entry = json.loads(line)
                    if entry.get("request_id") == request_id:
                        return self._replica_name(entry["upstream"])
            expect(time.monotonic() < deadline, f"{request_id} is not in nginx's log")
            await asyncio.sleep(_POLL)

    def _replica_name(self, upstream: str) -> str:
        last = upstream.split(",")[-1].strip().removeprefix("unix:")
        for name, socket in self.stack.replicas.items():
            if str(socket) == last:
                return name
        return upstream

    def _processes(self) -> dict[str, Path | None]:
        """Each app process by name: its Unix socket, or `None` for the single process."""
        return dict(self.stack.replicas) or {"app": None}

    def _direct(self, socket: Path | None) -> httpx.AsyncClient:
        """A client of one app process, not through nginx."""
        if socket is None:
            return httpx.AsyncClient(base_url=self.stack.base_url)
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(socket)), base_url="http://replica"
        )

    async def _cache_requests(self) -> collections.Counter[tuple[str, str]]:
        """scalepy_cache_requests_total by (result, tier), summed over every replica."""
        totals = collections.Counter[tuple[str, str]]()
        for samples in (await self._samples("scalepy_cache_requests_total")).values():
            for sample in samples:
                labels = sample.labels
                key = (labels.get("scalepy_cache_result", ""), labels.get("scalepy_cache_tier", ""))
                totals[key] += int(sample.value)
        return totals

    async def _breaker_states(self) -> dict[str, str]:
        """The PostgreSQL breaker's state in each app process, from its own /metrics."""
        states = {}
        for process, samples in (await self._samples("scalepy_breaker_state")).items():
            current = [
                sample.labels["scalepy_breaker_state"]
                for sample in samples
                if sample.labels.get("scalepy_breaker_name") == "postgres" and sample.value == 1
            ]
            states[process] = current[0] if current else "unknown"
        return states

    async def _samples(self, name: str) -> dict[str, list[Sample]]:
        """The samples called `name` in each app process's own /metrics (not via nginx)."""
        found: dict[str, list[Sample]] = {}
        for process, socket in self._processes().items():
            async with self._direct(socket) as direct:
                response = await direct.get("/metrics")
            expect(response.status_code == 200, f"/metrics of {process}: {_status(response)}")
            found[process] = [
                sample
                for family in text_string_to_metric_families(response.text)
                for sample in family.samples
                if sample.name == name
            ]
        return found


def _status(response: httpx.Response) -> str:
    """`503 Service Unavailable: <problem title/detail>` for a failure message."""
    text = f"{response.status_code} {response.reason_phrase}"
    if response.headers.get("Content-Type", "").startswith(("application/problem+json",)):
        problem = response.json()
        detail = problem.get("detail") or problem.get("title")
        if detail:
            text += f": {detail}"
    return text


def _is_breaker_open(response: httpx.Response) -> bool:
    """Whether a 503 is the breaker's answer: its problem names the breaker."""
    if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
        return False
    return "breaker" in response.json()
