"""A structural check of IETF health+json bodies (draft-inadarei-api-health-check-06)."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

__all__ = ("validate_health_json",)

STATUSES = {"pass", "warn", "fail"}
TOP_LEVEL_STRINGS = {"version", "releaseId", "serviceId", "description", "output"}
TOP_LEVEL = {"status", "notes", "checks", "links"} | TOP_LEVEL_STRINGS
ENTRY_STRINGS = {"componentId", "componentType", "observedUnit", "output"}
ENTRY = {"status", "time", "observedValue", "affectedEndpoints", "links"} | ENTRY_STRINGS
# RFC 3339 date-time (section 5.6), which `time` must be.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)
# "{componentName}:{measurementName}", either part optional; the name holds no colon.
KEY = re.compile(r"[^:]+(?::[^:]+)?|:[^:]+")


def _entry(key: str, entry: object) -> None:
    assert isinstance(entry, dict), f"{key}: entries are objects, got {entry!r}"
    assert set() == set(entry) - ENTRY, f"{key}: unknown fields {set(entry) - ENTRY}"
    assert entry.get("status") in STATUSES, f"{key}: bad status {entry.get('status')!r}"
    for name in ENTRY_STRINGS & set(entry):
        assert isinstance(entry[name], str), f"{key}: {name} must be a string"
    assert "time" in entry, f"{key}: time is missing"
    assert RFC3339.fullmatch(entry["time"]), f"{key}: time {entry['time']!r} is not RFC 3339"
    datetime.datetime.fromisoformat(entry["time"])  # a real date, not only the right shape
    if "observedValue" in entry:
        assert not isinstance(entry["observedValue"], dict | list), f"{key}: observedValue"


def validate_health_json(body: bytes, *, details: bool) -> dict[str, Any]:
    """Parse a body and assert it has the draft's structure; return it.

    Args:
        body: The response body.
        details: Whether `checks` must be present (the detailed endpoint) or
            absent (a probe: status and an optional output only).
    """
    document = json.loads(body)
    assert isinstance(document, dict)
    assert set() == set(document) - TOP_LEVEL, f"unknown fields {set(document) - TOP_LEVEL}"
    assert document["status"] in STATUSES
    for name in TOP_LEVEL_STRINGS & set(document):
        assert isinstance(document[name], str), f"{name} must be a string"
    if not details:
        assert set() == set(document) - {"status", "output"}, "a probe carries status only"
        return document
    checks = document["checks"]
    assert isinstance(checks, dict)
    for key, entries in checks.items():
        assert KEY.fullmatch(key), f"bad check key {key!r}"
        assert isinstance(entries, list), f"{key}: values are lists"
        assert entries, f"{key}: empty list"
        for entry in entries:
            _entry(key, entry)
    return document
