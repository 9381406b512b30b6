"""One trace from the client's request to the job: request span -> outbox -> enqueue -> job run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from todo_support import eventually, write_headers

from scalepy.integrations.opentelemetry import OpenTelemetryInstrumentation
from scalepy.queue import Queue, Worker
from scalepy.telemetry import context_propagation
from todo.app import create_app
from todo.outbox import NotificationRelay
from todo.tasks import register

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from scalepy.pools import PoolManager
    from todo.settings import Settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_the_job_runs_in_the_trace_of_the_request_that_enqueued_it(
    settings: Settings,
) -> None:
    """A POST carrying `traceparent` is served in a span of that trace.

    The job's `send` span (the worker's relay enqueues it from the outbox, under the
    trace context the request stored there) and `process` span continue it.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(settings, tracer_provider=provider)
    tracing = OpenTelemetryInstrumentation(tracer_provider=provider)
    worker_queue = Queue(settings.redis_url, name=settings.namespace, instrumentation=tracing)
    tasks = register(worker_queue)
    async with app.router.lifespan_context(app):
        pools: PoolManager = app.state.services.pools

        async def startup() -> PoolManager:
            return pools  # the app's pools, already open

        relay = NotificationRelay(
            pools.postgres, tasks.notify_created, propagation=context_propagation(tracing)
        )
        async with worker_queue, Worker(worker_queue, startup=startup), relay:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
                headers = {"traceparent": traceparent, **write_headers(settings)}
                created = await client.post("/todos", json={"title": "traced"}, headers=headers)
                assert 201 == created.status_code

            async def processed() -> bool:
                return any(
                    span.name.startswith("process") for span in exporter.get_finished_spans()
                )

            await eventually(processed)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    server = [span for span in spans if span.kind is SpanKind.SERVER]
    send = [span for span in spans if span.name == f"send {settings.namespace}"]
    process = [span for span in spans if span.name == f"process {settings.namespace}"]
    assert (1, 1, 1) == (len(server), len(send), len(process)), [span.name for span in spans]
    for span in (*server, *send, *process):
        assert TRACE_ID == format(span.context.trace_id, "032x")
    assert server[0].parent is not None
    assert PARENT_ID == format(server[0].parent.span_id, "016x")
    assert process[0].parent is not None
    assert process[0].parent.span_id in (send[0].context.span_id, server[0].context.span_id)


def test_the_tracing_middleware_is_there_only_when_spans_are_recorded(settings: Settings) -> None:
    """Without a tracer provider (the API's default proxy: no SDK) no span middleware runs.

    Given a provider, the server span middleware is installed.
    """

    def middleware(app: Starlette) -> list[object]:
        return [entry.cls for entry in app.user_middleware]

    assert OpenTelemetryMiddleware not in middleware(create_app(settings))
    traced = create_app(settings, tracer_provider=TracerProvider())
    assert OpenTelemetryMiddleware is middleware(traced)[0]
