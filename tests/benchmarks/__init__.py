"""Tests of the benchmarks' shared modules (benchmarks/ is on sys.path)."""
