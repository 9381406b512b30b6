"""Tests of scalepy.testing: the ASGI driver and the shipped store contracts."""
