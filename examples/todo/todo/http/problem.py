"""RFC 9457 problem details: the one shape of every error the API answers.

```python
raise Problem(404, "No todo 42.")
```

is answered `404` with `Content-Type: application/problem+json` and the body
`{"type":"about:blank","title":"Not Found","status":404,"detail":"No todo 42."}`
once the handlers of `todo.http.errors` are installed.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.responses import Response

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = (
    "PROBLEM_MEDIA_TYPE",
    "InvalidField",
    "Problem",
    "ProblemDetails",
    "ProblemResponse",
    "status_phrase",
)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class InvalidField(msgspec.Struct, omit_defaults=True):
    """One reason a request body was refused (`422`), as RFC 9457 §3 sketches it."""

    detail: str
    pointer: str | None = None
    """A JSON pointer into the body, as a URI fragment (`#/title`)."""


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """A problem body as the OpenAPI document describes it.

    The members RFC 9457 defines, and `errors` (the fields of a `422`). Problems may
    carry more (`request_id`, `breaker`, `max_bytes`, ...): the schema leaves them
    open, as the RFC does.
    """

    status: int
    title: str
    type: str = "about:blank"
    detail: str | None = None
    instance: str | None = None
    errors: list[InvalidField] | None = None


class Problem(Exception):
    """An HTTP error answered as `application/problem+json`.

    Args:
        status: The HTTP status code, 400-599.
        detail: What went wrong with this request, for a human reader.
        title: A short summary of the problem type; the status phrase by default.
        type: A URI naming the problem type; `about:blank` means "see the status".
        instance: A URI naming this occurrence.
        headers: Response headers to send with it (`Retry-After`, `Allow`, ...).
        **extensions: More members of the body, e.g. `errors=[...]`.

    Raises:
        ValueError: `status` is not an error status.
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        type: str = "about:blank",
        instance: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a problem's status is 400-599, not {status}")
        self.status = status
        self.title = title if title is not None else status_phrase(status)
        self.detail = detail
        self.type = type
        self.instance = instance
        self.headers: dict[str, str] = dict(headers or {})
        self.extensions = extensions
        super().__init__(status, detail)

    def __str__(self) -> str:
        return f"{self.status} {self.title}" + (f": {self.detail}" if self.detail else "")

    def body(self) -> dict[str, Any]:
        """The problem's JSON members, the RFC's first, absent ones left out."""
        members: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail is not None:
            members["detail"] = self.detail
        if self.instance is not None:
            members["instance"] = self.instance
        members.update(self.extensions)
        return members

    def response(self) -> ProblemResponse:
        """The Starlette response (an ASGI app) that answers this problem."""
        return ProblemResponse(self)


class ProblemResponse(Response):
    """A `Problem` as a response: its status, its headers and its JSON body."""

    media_type = PROBLEM_MEDIA_TYPE

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.body(), status_code=problem.status, headers=problem.headers)

    def render(self, content: Any) -> bytes:
        """Encode the body with msgspec (any JSON-compatible extension members)."""
        return msgspec.json.encode(content)


# RFC 9110 renamed these; Python < 3.13 still has the RFC 7231 phrases.
_RFC_9110_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_phrase(status: int) -> str:
    """The reason phrase of `status` as RFC 9110 names it."""
    if phrase := _RFC_9110_PHRASES.get(status):
        return phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Error" if status < 500 else "Server Error"
