"""Tests of scalepy.cache."""
