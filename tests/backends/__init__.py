"""Tests of scalepy.backends: URLs, keys, masking, the guard, one wiring for every primitive."""
