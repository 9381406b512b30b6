"""Glue between scalepy and third-party frameworks; one optional dependency per module."""
