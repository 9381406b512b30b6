"""Test helpers for code that uses scalepy: a fake clock, a recording instrumentation, ASGI calls.

Nothing here talks to a network; everything is safe to use in unit tests. The
store contracts (`CacheStoreContract`, `QueueStoreContract`, `RateLimitStoreContract`)
check a backend of your own against the memory reference; they need no test
framework to import.
"""

from scalepy.testing._asgi import AsgiResponse as AsgiResponse
from scalepy.testing._asgi import asgi_request as asgi_request
from scalepy.testing._cache_contract import Advance as Advance
from scalepy.testing._cache_contract import CacheStoreContract as CacheStoreContract
from scalepy.testing._clock import FakeClock as FakeClock
from scalepy.testing._instrumentation import RecordingInstrumentation as RecordingInstrumentation
from scalepy.testing._queue_contract import QueueStoreContract as QueueStoreContract
from scalepy.testing._ratelimit_contract import RateLimitStoreContract as RateLimitStoreContract

__all__ = (
    "Advance",
    "AsgiResponse",
    "CacheStoreContract",
    "FakeClock",
    "QueueStoreContract",
    "RateLimitStoreContract",
    "RecordingInstrumentation",
    "asgi_request",
)
