"""Test helpers for code that uses scalepy: a fake clock and a recording instrumentation.

Nothing here talks to a network; everything is safe to use in unit tests.
"""

from scalepy.testing._clock import FakeClock as FakeClock
from scalepy.testing._instrumentation import RecordingInstrumentation as RecordingInstrumentation

__all__ = ("FakeClock", "RecordingInstrumentation")
