"""HTTP header fields for a `Decision`, per draft-ietf-httpapi-ratelimit-headers-10.

Two structured fields (RFC 9651 lists of items), one item per policy, named by
`policy.name` or, when that is empty, by its position (`"p0"`, `"p1"`, ...):

```
RateLimit-Policy: "burst";q=20;w=2, "daily";q=1000;w=86400
RateLimit: "burst";r=19;t=1, "daily";r=999;t=87
```

- `q` is the quota (`policy.limit`) and `w` the window in seconds.
- `r` is what is left and `t` the seconds until it is restored: until the
  same request would be allowed again when the policy denied it, otherwise until
  the quota is whole. Every number is an integer; times are rounded up, so a
  client that waits `t` seconds is never early.

`Retry-After` (delay-seconds, at least 1) accompanies a denial. The legacy
`X-RateLimit-Limit` / `-Remaining` / `-Reset` trio, still read by many clients,
describes the most restrictive policy, with `-Reset` in seconds from now.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit._decision import Decision, PolicyDecision
    from scalepy.ratelimit._policies import Policy

__all__ = (
    "check_policy_names",
    "legacy_headers",
    "policy_name",
    "rate_limit_headers",
    "ratelimit_field",
    "ratelimit_policy_field",
    "retry_after_seconds",
)


def policy_name(policy: Policy, index: int) -> str:
    """The item name `policy` is shown under: its `name`, else `"p<index>"`."""
    return policy.name or f"p{index}"


def check_policy_names(policies: Sequence[Policy]) -> None:
    """Check that `policies` can be shown together in one header.

    Raises:
        ValueError: A name holds characters a structured-field string cannot (only
            printable ASCII is allowed), or two policies would share a name.
    """
    names = [policy_name(policy, index) for index, policy in enumerate(policies)]
    for name in names:
        if not all(" " <= char <= "~" for char in name):
            raise ValueError(f"policy name must be printable ASCII, got {name!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"policies shown together need distinct names, got {', '.join(duplicates)} "
            "more than once (unnamed policies are called p0, p1, ... by position)"
        )


def _string(name: str) -> str:
    """`name` as a structured-field string."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _ceil(seconds: float) -> int:
    return max(0, math.ceil(seconds))


def _policy_reset(decision: PolicyDecision) -> int:
    return _ceil(decision.reset_after if decision.allowed else decision.retry_after)


def ratelimit_policy_field(decision: Decision) -> str:
    """The `RateLimit-Policy` field value: each policy's quota `q` and window `w`.

    Example: `"burst";q=20;w=2, "p1";q=1000;w=86400`.
    """
    # A policy's name is not part of its equality: the key holds it beside the policy.
    return _policy_field(tuple((item.policy, item.policy.name) for item in decision.policies))


# The same few policy sets answer every request: their field is written once each.
@functools.lru_cache(maxsize=256)
def _policy_field(policies: tuple[tuple[Policy, str], ...]) -> str:
    return ", ".join(
        f"{_string(policy_name(policy, index))};q={policy.limit}"
        f";w={max(1, math.ceil(policy.window))}"
        for index, (policy, _) in enumerate(policies)
    )


def ratelimit_field(decision: Decision) -> str:
    """The `RateLimit` field value: each policy's remaining `r` and reset `t`.

    Example: `"burst";r=0;t=2, "p1";r=998;t=87`.
    """
    return ", ".join(
        f"{_string(policy_name(item.policy, index))};r={max(0, item.remaining)}"
        f";t={_policy_reset(item)}"
        for index, item in enumerate(decision.policies)
    )


def retry_after_seconds(decision: Decision) -> int:
    """`Retry-After` for a denied request: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(decision.retry_after))


def legacy_headers(decision: Decision) -> list[tuple[str, str]]:
    """`X-RateLimit-Limit`, `-Remaining` and `-Reset` for the most restrictive policy.

    `-Reset` is in seconds from now: until a retry may succeed when denied,
    otherwise until every quota is whole.
    """
    reset = retry_after_seconds(decision) if not decision.allowed else _ceil(decision.reset_after)
    return [
        ("x-ratelimit-limit", str(decision.limit)),
        ("x-ratelimit-remaining", str(max(0, decision.remaining))),
        ("x-ratelimit-reset", str(reset)),
    ]


def rate_limit_headers(
    decision: Decision, *, standard: bool = True, legacy: bool = False
) -> list[tuple[str, str]]:
    """Every header a response carries for `decision`, names in lower case.

    Args:
        decision: The limiter's answer.
        standard: Include `RateLimit-Policy` and `RateLimit` (when the decision
            has per-policy detail).
        legacy: Include `X-RateLimit-Limit`, `-Remaining` and `-Reset`.

    Returns:
        `(name, value)` pairs; `Retry-After` comes first when the request was denied.
    """
    headers: list[tuple[str, str]] = []
    if not decision.allowed:
        headers.append(("retry-after", str(retry_after_seconds(decision))))
    if standard and decision.policies:
        headers.append(("ratelimit-policy", ratelimit_policy_field(decision)))
        headers.append(("ratelimit", ratelimit_field(decision)))
    if legacy:
        headers.extend(legacy_headers(decision))
    return headers
