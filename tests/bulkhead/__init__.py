"""Tests of scalepy.bulkhead."""
