"""The trace context a job carries from `send` to `process`.

Spans follow the OpenTelemetry messaging conventions: the producer's `send <queue>`
and the worker's `process <queue>`, whose parent is the context that was current
where the job was enqueued. That context travels in the job as text headers, made
and read by the queue's instrumentation when it can propagate context
(`scalepy.telemetry.ContextPropagation`, e.g. `OpenTelemetryInstrumentation`);
otherwise jobs carry nothing.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scalepy.telemetry import ContextPropagation

__all__ = ("capture_trace", "trace_scope")


def capture_trace(propagation: ContextPropagation | None) -> str:
    """Return the current trace context as the text a job carries, or `""` if none."""
    carrier = {} if propagation is None else propagation.inject_context()
    return json.dumps(carrier, separators=(",", ":")) if carrier else ""


def trace_scope(
    propagation: ContextPropagation | None, trace: str
) -> contextlib.AbstractContextManager[None]:
    """Make the context a job carries (`capture_trace`) current for a block."""
    if not trace or propagation is None:
        return contextlib.nullcontext()
    return propagation.attached_context(json.loads(trace))
