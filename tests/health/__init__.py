"""Tests of scalepy.health."""
