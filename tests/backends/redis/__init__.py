"""Tests of scalepy.backends.redis: the RESP client, subscriptions, Lua scripts."""
