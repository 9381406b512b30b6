"""Tests of the code the benchmarks share: the results format, the plots, the wrk harness."""
