"""Tests of scalepy.integrations."""
