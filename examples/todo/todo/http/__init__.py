"""The HTTP edge of the Todo API, free of todo logic: errors, headers, limits, ids, docs.

Each module is one piece, usable alone:

- `problem`: `Problem`, the RFC 9457 error every failure is answered with;
- `errors`: exception handlers and the 500 middleware that answer with it;
- `request_id`: an id per request, echoed and put into log records;
- `security_headers`: the headers helmet sets that matter for a JSON API;
- `body_limit`: 413 for request bodies over a size limit;
- `cors`: the CORS set-up of the Todo-Backend contract;
- `draining`: `Connection: close` on every response while the replica drains;
- `openapi`: the OpenAPI 3.1 document, from routes described once;
- `endpoint`: `MethodEndpoint` and `JsonReply`, routes and JSON answers without
  Starlette's per-call wrapping;
- `edge`: `EdgeMiddleware`, the six middleware below as one (what the Todo API runs).

The middleware, outermost first, so every answer (a 413, a 429, a 500) carries the
request id, the security and the CORS headers:

```python
middleware = [
    Middleware(RequestIdMiddleware),
    Middleware(SecurityHeadersMiddleware),
    *filter(None, [cors_middleware(origins)]),  # preflights answered before any limit
    Middleware(UnhandledErrorMiddleware),
    Middleware(BodySizeLimitMiddleware, max_bytes=64 * 1024),
    Middleware(RateLimitMiddleware, ...),  # scalepy's
]
app = Starlette(routes=..., middleware=middleware, exception_handlers=problem_handlers())
```
"""

from todo.http.body_limit import BodySizeLimitMiddleware, BodyTooLarge
from todo.http.cors import (
    ALLOWED_METHODS,
    ALLOWED_REQUEST_HEADERS,
    EXPOSED_HEADERS,
    CrossOriginMiddleware,
    check_origins,
    cors_middleware,
)
from todo.http.draining import CloseWhileDrainingMiddleware
from todo.http.edge import EdgeMiddleware
from todo.http.endpoint import JSON_MEDIA_TYPE, JsonReply, MethodEndpoint
from todo.http.errors import UnhandledErrorMiddleware, problem_for, problem_handlers
from todo.http.openapi import Operation, Param, Reply, openapi_document, openapi_route
from todo.http.problem import (
    PROBLEM_MEDIA_TYPE,
    InvalidField,
    Problem,
    ProblemDetails,
    ProblemResponse,
    status_phrase,
)
from todo.http.request_id import (
    REQUEST_ID_HEADER,
    RequestIdFilter,
    RequestIdMiddleware,
    current_request_id,
)
from todo.http.security_headers import SecurityHeadersMiddleware, security_headers

__all__ = (
    "ALLOWED_METHODS",
    "ALLOWED_REQUEST_HEADERS",
    "EXPOSED_HEADERS",
    "JSON_MEDIA_TYPE",
    "PROBLEM_MEDIA_TYPE",
    "REQUEST_ID_HEADER",
    "BodySizeLimitMiddleware",
    "BodyTooLarge",
    "CloseWhileDrainingMiddleware",
    "CrossOriginMiddleware",
    "EdgeMiddleware",
    "InvalidField",
    "JsonReply",
    "MethodEndpoint",
    "Operation",
    "Param",
    "Problem",
    "ProblemDetails",
    "ProblemResponse",
    "Reply",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "UnhandledErrorMiddleware",
    "check_origins",
    "cors_middleware",
    "current_request_id",
    "openapi_document",
    "openapi_route",
    "problem_for",
    "problem_handlers",
    "security_headers",
    "status_phrase",
)
