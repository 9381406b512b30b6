"""`redact`: hide secrets in text a health body shows, such as error messages with DSNs."""

from __future__ import annotations

import re

__all__ = ("MASK", "redact")

MASK = "***"
"""What a redacted secret is replaced with."""

# Matched inside longer names too: db_password, PGPASSWORD, client_secret.
_SECRET_NAMES = r"\w*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)\w*"

# scheme://user:password@host; the password runs up to the last '@' before a '/'
# or whitespace, so an unescaped '@' in it is hidden too.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:@/\s]*):[^\s/]*@")
# password=secret, password = 'a b', password="x" (DSN keywords, query strings)
_PAIR = re.compile(
    rf"(?P<head>\b(?:{_SECRET_NAMES})\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&;,]*)", re.IGNORECASE
)
# "password": "secret" (JSON and Python reprs)
_QUOTED = re.compile(
    rf"(?P<head>([\"'])(?:{_SECRET_NAMES})\2\s*:\s*)(?:'[^']*'|\"[^\"]*\")", re.IGNORECASE
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the secrets in `text` with `***`.

    Hidden: passwords in URLs (`postgresql://user:***@host/db`), `key=value`
    pairs whose key names a secret (`password`, `pwd`, `secret`, `token`,
    `api_key`, ...), quoted `"password": "..."` items and bearer tokens.

    Args:
        text: Any text, e.g. an exception message.

    Returns:
        The text with every secret found masked.
    """
    text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    text = _PAIR.sub(rf"\g<head>{MASK}", text)
    text = _QUOTED.sub(rf'\g<head>"{MASK}"', text)
    return _BEARER.sub(rf"\g<head>{MASK}", text)
