"""scalepy test suite."""
