"""Masking secrets: `mask_url` for one URL or DSN, `redact` for free text.

Every URL or DSN scalepy prints (errors, reprs, logs, health bodies) goes through
`mask_url`; text scalepy did not write itself (a driver's message) goes through
`redact`, which masks each URL it finds with `mask_url` and the same key=value rule.

Rules, each chosen to mask too much rather than too little:

- `scheme://user:password@host...`: the password runs from the first `:` of the
  user info to the **last** `@`, so a raw `/`, `?`, `#`, `:` or `@` in it is
  hidden too. (An `@` after the host, as in `?name=a@b`, must be written `%40`,
  or everything before it counts as the password.)
- `key=value` where the key names a secret (`password`, `pwd`, `secret`, `token`,
  `api_key`, `private_key`, `sig`, `signature`, ... also inside longer names, with
  hyphens or not, such as `sslpassword`, `api-token`, `X-Goog-Signature`): the value
  up to `&`, `;`, `,` or whitespace, or a whole quoted value (`password='a b'`,
  with backslash escapes as libpq writes them).
- `"password": "..."` items (JSON, Python reprs).
- `Authorization:` / `Proxy-Authorization:` headers (any scheme: Basic, Bearer,
  ...), secret-named headers (`X-Api-Key:`, `X-Auth-Token:`), `Cookie:` and
  `Set-Cookie:`, and `Bearer <token>`: up to the end of the line.
"""

from __future__ import annotations

import re

__all__ = ("MASK", "mask_url", "redact", "split_userinfo")

MASK = "***"
"""What a masked secret is replaced with."""

# Matched inside longer names too, hyphenated ones included: db_password, PGPASSWORD,
# client_secret, sslpassword, X-Auth-Token, api-token, X-Goog-Signature.
_SECRET_NAMES = (
    r"(?:[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|credential|signature)[\w-]*|sig|auth)"
)
_QUOTED_VALUE = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
# password=secret, password = 'a b', ?token=x&, sig=... (DSN keywords, query strings)
_PAIR = re.compile(
    rf"(?P<head>(?<![\w-])(?:{_SECRET_NAMES})\s*=\s*)(?:{_QUOTED_VALUE}|[^\s&;,]*)",
    re.IGNORECASE,
)
# "password": "secret" (JSON and Python reprs)
_QUOTED_ITEM = re.compile(
    rf"(?P<head>([\"'])(?:{_SECRET_NAMES})\2\s*:\s*)(?:{_QUOTED_VALUE})", re.IGNORECASE
)
# Authorization: Basic dXNlcjpwdw==, X-Api-Key: k, Bearer t (to the end of the line)
_HEADER = re.compile(
    rf"(?P<head>(?<![\w/-])(?:(?:proxy-)?authorization|{_SECRET_NAMES}|(?:set-)?cookie)"
    rf"\s*:\s*(?:(?:basic|bearer|digest|token|negotiate)\s+)?)[^\r\n]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)[^\s\"']+", re.IGNORECASE)
# A URL inside free text: a scheme, then everything up to whitespace.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")


def split_userinfo(rest: str) -> tuple[str, str]:
    """Split what follows `scheme://` into the user info and the rest, at the last `@`.

    The last `@`, not the first `/`: a password holding a raw `/`, `?` or `#` is
    still taken whole (and masked whole by `mask_url`).

    Returns:
        `(userinfo, location)`; `userinfo` is empty when there is no `@`.
    """
    userinfo, _, location = rest.rpartition("@")
    return userinfo, location


def _mask_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, hosts = split_userinfo(rest)  # where the parser ends the password, too
    if not sep or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}:{MASK}@{hosts}"


def _mask_pairs(text: str) -> str:
    return _PAIR.sub(rf"\g<head>{MASK}", text)


def mask_url(url: str) -> str:
    """Return a URL or DSN with every password, token and signature replaced by `***`.

    The one function scalepy formats a URL or DSN through before printing it.
    Handles `scheme://user:password@host` (whatever the password holds), secret
    query parameters (`?password=`, `&token=`, `&sig=`) and keyword DSNs
    (`host=db password='a b'`). See the module docstring for the exact rules.

    Args:
        url: A backend URL, a PostgreSQL URL or keyword DSN, or any string
            given where one was expected.

    Returns:
        The same text with the secrets masked; unchanged if it holds none.
    """
    return _mask_pairs(_mask_userinfo(url))


def redact(text: str) -> str:
    """Replace the secrets found in free text (an exception message) with `***`.

    Masks every URL in it as `mask_url` does, `key=value` pairs whose key names
    a secret, quoted `"password": "..."` items, `Authorization` and other
    secret-named headers, and bearer tokens.

    Args:
        text: Any text.

    Returns:
        The text with every secret found masked.
    """
    text = _URL_IN_TEXT.sub(lambda match: _mask_userinfo(match.group()), text)
    text = _HEADER.sub(rf"\g<head>{MASK}", text)
    text = _mask_pairs(text)
    text = _QUOTED_ITEM.sub(rf'\g<head>"{MASK}"', text)
    return _BEARER.sub(rf"\g<head>{MASK}", text)
