"""Tests of scalepy.queue and the scalepy command."""
