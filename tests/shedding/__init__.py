"""Tests of scalepy.shedding: the pure limit cores, the wait line, the shedder, the middleware."""
