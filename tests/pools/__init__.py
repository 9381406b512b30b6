"""Tests of scalepy.pools: PostgreSQL pools, read routing, the pool manager."""
