"""Test helpers for code that uses scalepy: a fake clock, a recording instrumentation, ASGI calls.

Nothing here talks to a network; everything is safe to use in unit tests.
"""

from scalepy.testing._asgi import AsgiResponse as AsgiResponse
from scalepy.testing._asgi import asgi_request as asgi_request
from scalepy.testing._clock import FakeClock as FakeClock
from scalepy.testing._instrumentation import RecordingInstrumentation as RecordingInstrumentation

__all__ = ("AsgiResponse", "FakeClock", "RecordingInstrumentation", "asgi_request")
