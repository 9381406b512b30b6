"""Tests of scalepy.breaker, scalepy.retry and scalepy.bulkhead."""
