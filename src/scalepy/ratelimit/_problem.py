"""The RFC 9457 `application/problem+json` bodies of rate-limit answers (429 and 413).

One place for them, so the ASGI middleware and the framework integrations answer
the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalepy._asgi import problem_body
from scalepy.ratelimit._headers import retry_after_seconds

if TYPE_CHECKING:
    from scalepy.ratelimit._decision import Decision

__all__ = ("too_large_body", "too_many_body")


def too_many_body(decision: Decision) -> bytes:
    """The 429 body for a denied `decision`, with its `retry_after` in whole seconds."""
    retry_after = retry_after_seconds(decision)
    detail = f"Rate limit exceeded; retry in {retry_after} s."
    return problem_body(429, "Too Many Requests", detail, retry_after=retry_after)


def too_large_body(cost: int, burst: int) -> bytes:
    """The 413 body: the request costs more than its policies ever allow at once."""
    detail = f"This request costs {cost}; at most {burst} can ever be allowed at once."
    return problem_body(413, "Content Too Large", detail)
