"""Lua scripts used by the script registry tests."""
