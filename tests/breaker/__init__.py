"""Tests of scalepy.breaker."""
