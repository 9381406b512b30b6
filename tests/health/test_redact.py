"""Secrets never reach a health body."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scalepy.health import redact

SECRETS = st.text(
    alphabet=st.characters(categories=("L", "N"), include_characters="!$%^*()-_+[]{}.~@"),
    min_size=4,
    max_size=20,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:hunter2@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("redis://:s3cret@cache:6379/0 refused", "redis://:***@cache:6379/0 refused"),
        ("rediss+cluster://u:p@ss@a:7000,b:7001", "rediss+cluster://u:***@a:7000,b:7001"),
        ("host=db password=hunter2 dbname=app", "host=db password=*** dbname=app"),
        ("password='two words' user=app", "password=*** user=app"),
        ("PGPASSWORD=x db_password = y", "PGPASSWORD=*** db_password = ***"),
        ("/login?user=a&token=abc&x=1", "/login?user=a&token=***&x=1"),
        ('{"password": "x", "api_key": "y"}', '{"password": "***", "api_key": "***"}'),
        ("{'client_secret': 'z'}", "{'client_secret': \"***\"}"),
        ("Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://user@cache", "redis://user@cache"),
        # An '@' after the host reads as the end of a password: masking too much is safe.
        ("http://host:8080/path?mail=a@b", "http://host:***@b"),
        ("http://host:8080/path?mail=a%40b", "http://host:8080/path?mail=a%40b"),
        ("redis://u:pa/ss@cache:6379/0 refused", "redis://u:***@cache:6379/0 refused"),
        ("redis://:a@b:c/d?e#f@cache/0", "redis://:***@cache/0"),
        ("postgresql://app:p%2Fw%40x@db/app", "postgresql://app:***@db/app"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "Authorization: Basic ***"),
        ("proxy-authorization: Digest x=1, y=2\nnext", "proxy-authorization: Digest ***\nnext"),
        ("X-Api-Key: k3y-v4lue", "X-Api-Key: ***"),
        ("GET /f?sig=abc%2F&se=2026&token=t0k", "GET /f?sig=***&se=2026&token=***"),
        ("x-amz-signature=abc design=ok", "x-amz-signature=*** design=ok"),
        ("password='it\\'s q' user=app", "password=*** user=app"),
        ("connection refused", "connection refused"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    """URL passwords, secret key=value pairs, quoted secrets, credentials headers are masked."""
    assert expected == redact(text)


@given(password=SECRETS, user=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
@example(password="abcd", user="sig")  # a user named like a secret header ('sig:') masked the host
def test_url_passwords_never_survive(password: str, user: str) -> None:
    """Whatever characters a URL password holds, it is gone after redaction."""
    text = f"cannot connect to postgresql://{user}:{password}@db.internal:5432/app: refused"

    assert f"cannot connect to postgresql://{user}:***@db.internal:5432/app: refused" == redact(
        text
    )


@given(password=SECRETS.filter(lambda s: not any(c in s for c in " &;,'\"")))
def test_dsn_passwords_never_survive(password: str) -> None:
    """A password=... pair in a keyword DSN is masked whatever it holds."""
    assert "host=db password=*** port=5432" == redact(f"host=db password={password} port=5432")
