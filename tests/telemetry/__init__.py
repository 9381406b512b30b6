"""Tests of scalepy.telemetry and the OpenTelemetry and Prometheus instrumentations."""
