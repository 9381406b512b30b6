"""The response headers helmet sets that matter for a JSON API, as pure ASGI.

```python
Middleware(SecurityHeadersMiddleware)                       # dev, or TLS ends elsewhere
Middleware(SecurityHeadersMiddleware, hsts_max_age=31_536_000)  # served over HTTPS
```

Every response gets:

- `X-Content-Type-Options: nosniff`: a browser never runs a JSON body as a script;
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: a response
  opened as a page can load and run nothing, and nothing frames the API;
- `Cross-Origin-Resource-Policy: same-origin`: other sites cannot embed responses with
  `<img>`/`<script>` (CORS reads are not affected: CORP applies to no-cors loads only);
- `Strict-Transport-Security` only when `hsts_max_age` is given: sent over plain HTTP
  in dev, it would pin `localhost` to HTTPS in the browser.

Two headers helmet also sets are left out, as a JSON API does not need them and each
costs every response (uvicorn checks and copies each header): `X-Frame-Options`,
which `frame-ancestors` supersedes in every browser that enforces CSP (CSP Level 2:
it then ignores `X-Frame-Options`; scanners such as ZAP accept either), and
`Referrer-Policy`, as a JSON response loads nothing that could send a `Referer` and
browsers already send only the origin to other sites by default
(`strict-origin-when-cross-origin`). Add them back in `security_headers()` if a
policy requires them.

A header the app set itself (say a CSP for an HTML page) is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("SecurityHeaders", "SecurityHeadersMiddleware", "security_headers")


def security_headers(
    *, hsts_max_age: int | None = None, hsts_include_subdomains: bool = True
) -> list[tuple[bytes, bytes]]:
    """The headers `SecurityHeadersMiddleware` adds, as raw ASGI pairs.

    Args:
        hsts_max_age: Seconds browsers must use HTTPS only; `None` sends no HSTS.
        hsts_include_subdomains: Extend HSTS to every subdomain.

    Raises:
        ValueError: `hsts_max_age` is negative.
    """
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if hsts_max_age is not None:
        if hsts_max_age < 0:
            raise ValueError(f"hsts_max_age is seconds >= 0, not {hsts_max_age}")
        hsts = f"max-age={hsts_max_age}" + (
            "; includeSubDomains" if hsts_include_subdomains else ""
        )
        headers.append((b"strict-transport-security", hsts.encode()))
    return headers


class SecurityHeaders:
    """`security_headers()`, added to the headers of a response that lacks them.

    Args:
        hsts_max_age: Seconds browsers must use HTTPS only; `None` (the default)
            sends no HSTS. Set it when clients reach the service over HTTPS.
        hsts_include_subdomains: Extend HSTS to every subdomain.
    """

    __slots__ = ("_names", "headers")

    def __init__(
        self, *, hsts_max_age: int | None = None, hsts_include_subdomains: bool = True
    ) -> None:
        self.headers = security_headers(
            hsts_max_age=hsts_max_age, hsts_include_subdomains=hsts_include_subdomains
        )
        self._names = frozenset(name for name, _ in self.headers)

    def add_to(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Append those of ours `headers` lacks (ASGI header names are lowercase)."""
        # Most responses set none of ours: a scan that stops at the first one set
        # costs less than building the set of every name present.
        for name, _ in headers:
            if name in self._names:
                break
        else:
            headers.extend(self.headers)
            return
        present = {name for name, _ in headers}
        headers.extend(header for header in self.headers if header[0] not in present)


class SecurityHeadersMiddleware:
    """Add `security_headers()` to every HTTP response the app did not set them on.

    Args:
        app: The ASGI app to wrap.
        hsts_max_age: Seconds browsers must use HTTPS only; `None` (the default)
            sends no HSTS. Set it when clients reach the service over HTTPS.
        hsts_include_subdomains: Extend HSTS to every subdomain.
    """

    def __init__(
        self, app: ASGIApp, *, hsts_max_age: int | None = None, hsts_include_subdomains: bool = True
    ) -> None:
        self.app = app
        self._security = SecurityHeaders(
            hsts_max_age=hsts_max_age, hsts_include_subdomains=hsts_include_subdomains
        )
        self.headers = self._security.headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, adding the headers to its response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A new list: a response object may reuse its own.
                headers = list(message.get("headers", ()))
                self._security.add_to(headers)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
