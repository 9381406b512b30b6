"""Tests of scalepy.retry."""
