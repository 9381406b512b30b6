"""The Todo API: the service scalepy exists for, composed from its primitives.

Modules, in the order a reader meets them: `settings` (configuration),
`services` (the composition root), `schema` (migrations), `models` (the API's
types), `repository` (SQL, caching, breaker, retries), `auth` (JWT scopes),
`routes` (handlers), `urls` (public URLs behind proxies), `tasks` (background
jobs), `worker` (the worker process), `app` (`create_app()`), and `http` (the
HTTP edge: problem+json, request ids, security headers, limits, CORS, OpenAPI).
"""

__version__ = "0.1.0"
