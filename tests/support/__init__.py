"""Helpers for scalepy's own test suite: real servers the tests start and stop."""
