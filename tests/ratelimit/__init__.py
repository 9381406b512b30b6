"""Tests of scalepy.ratelimit."""
