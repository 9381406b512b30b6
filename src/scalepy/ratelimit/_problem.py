"""The RFC 9457 `application/problem+json` bodies of rate-limit answers (429 and 413).

One place for them, so the ASGI middleware and the framework integrations answer
the same bytes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from scalepy.ratelimit._headers import retry_after_seconds

if TYPE_CHECKING:
    from scalepy.ratelimit._decision import Decision

__all__ = ("PROBLEM_JSON", "PROBLEM_TYPE", "problem_body", "too_large_body", "too_many_body")

PROBLEM_TYPE = "about:blank"
"""The problem `type` of 429 and 413 answers: the status code says it all (RFC 9457 §4.2.1)."""

PROBLEM_JSON = "application/problem+json"
"""The media type of the bodies."""


def problem_body(status: int, title: str, detail: str, **extensions: int) -> bytes:
    """An RFC 9457 body: `type`, `title`, `status`, `detail`, then `extensions`."""
    problem = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    return json.dumps({**problem, **extensions}, separators=(",", ":")).encode()


def too_many_body(decision: Decision) -> bytes:
    """The 429 body for a denied `decision`, with its `retry_after` in whole seconds."""
    retry_after = retry_after_seconds(decision)
    detail = f"Rate limit exceeded; retry in {retry_after} s."
    return problem_body(429, "Too Many Requests", detail, retry_after=retry_after)


def too_large_body(cost: int, burst: int) -> bytes:
    """The 413 body: the request costs more than its policies ever allow at once."""
    detail = f"This request costs {cost}; at most {burst} can ever be allowed at once."
    return problem_body(413, "Content Too Large", detail)
