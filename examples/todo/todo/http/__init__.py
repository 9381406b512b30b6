"""The HTTP edge of the Todo API, free of todo logic: errors, headers, limits, ids, docs.

Each module is one piece, usable alone:

- `problem`: `Problem`, the RFC 9457 error every failure is answered with;
- `errors`: exception handlers and the 500 middleware that answer with it;
- `request_id`: an id per request, echoed and put into log records;
- `security_headers`: the headers helmet sets that matter for a JSON API.
"""

from todo.http.errors import UnhandledErrorMiddleware, problem_for, problem_handlers
from todo.http.problem import PROBLEM_MEDIA_TYPE, Problem, ProblemDetails, ProblemResponse
from todo.http.request_id import (
    REQUEST_ID_HEADER,
    RequestIdFilter,
    RequestIdMiddleware,
    current_request_id,
)
from todo.http.security_headers import SecurityHeadersMiddleware, security_headers

__all__ = (
    "PROBLEM_MEDIA_TYPE",
    "REQUEST_ID_HEADER",
    "Problem",
    "ProblemDetails",
    "ProblemResponse",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "UnhandledErrorMiddleware",
    "current_request_id",
    "problem_for",
    "problem_handlers",
    "security_headers",
)
