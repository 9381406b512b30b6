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

from scalepy.ratelimit._decision import Outcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scalepy.ratelimit._decision import Decision, PolicyDecision
    from scalepy.ratelimit._policies import Policy

__all__ = (
    "HeaderTemplate",
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


def ratelimit_policy_field(decision: Decision) -> str:
    """The `RateLimit-Policy` field value: each policy's quota `q` and window `w`.

    Example: `"burst";q=20;w=2, "p1";q=1000;w=86400`.
    """
    return _policy_field(_named(decision))


def _named(decision: Decision) -> tuple[tuple[Policy, str], ...]:
    """`decision`'s policies, each beside its name.

    A policy's name is not part of its equality: caches key on both.
    """
    return tuple((item.policy, item.policy.name) for item in decision.policies)


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
    return _template(_named(decision), True, False).ratelimit(decision.policies).decode("latin-1")


class HeaderTemplate:
    """The rate-limit headers of one policy set, encoded for ASGI.

    Everything that does not change between responses (header names, the
    `RateLimit-Policy` value, each policy's item name) is encoded once, when the
    template is built; a response formats only its numbers. Build one per policy
    set, when configuring; `encode` is on every request's path.

    Args:
        policies: The policies decided together, in order.
        standard: Include `RateLimit-Policy` and `RateLimit`.
        legacy: Include `X-RateLimit-Limit`, `-Remaining` and `-Reset`.
    """

    __slots__ = ("_items", "_legacy", "_policies", "_policy_header", "_standard")

    def __init__(self, policies: Sequence[Policy], *, standard: bool, legacy: bool) -> None:
        self._policies = tuple(policies)
        self._standard = standard
        self._legacy = legacy
        named = tuple((policy, policy.name) for policy in self._policies)
        self._policy_header = (b"ratelimit-policy", _policy_field(named).encode("latin-1"))
        # One `%`-format per item: its name escaped, its two numbers left open.
        self._items = tuple(
            _string(policy_name(policy, index)).replace("%", "%%").encode("latin-1") + b";r=%d;t=%d"
            for index, policy in enumerate(self._policies)
        )

    def encode(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        """Every header a response carries for `decision`, as `rate_limit_headers` lists them.

        A fail-open decision was not reached on real state: it advertises nothing.

        Args:
            decision: The limiter's answer under this template's policies (a
                decision under other policies is written from its own).

        Returns:
            `(name, value)` pairs, encoded; `Retry-After` first when denied.
        """
        items = decision.policies
        if decision.outcome is Outcome.FAIL_OPEN:
            return []
        if (  # most responses
            decision.allowed
            and len(items) == 1 == len(self._policies)
            and items[0].policy is self._policies[0]
            and self._standard
            and not self._legacy
        ):
            return [self._policy_header, (b"ratelimit", self._items[0] % _numbers(items[0]))]
        if not self._describes(items):
            return _template(_named(decision), self._standard, self._legacy).written(decision)
        return self.written(decision)

    def written(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        """`encode`, for a decision under policies equal to this template's, names included."""
        items = decision.policies
        headers: list[tuple[bytes, bytes]] = []
        if not decision.allowed:
            headers.append((b"retry-after", b"%d" % retry_after_seconds(decision)))
        if self._standard and items:
            headers.append(self._policy_header)
            headers.append((b"ratelimit", self.ratelimit(items)))
        if self._legacy:
            headers.extend(
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in legacy_headers(decision)
            )
        return headers

    def _describes(self, items: tuple[PolicyDecision, ...]) -> bool:
        """Whether `items` are decisions of exactly this template's policies, in order."""
        policies = self._policies
        if len(items) != len(policies):
            return False
        return all(item.policy is policy for item, policy in zip(items, policies, strict=True))

    def ratelimit(self, items: tuple[PolicyDecision, ...]) -> bytes:
        """The `RateLimit` value of `items`, decisions of this template's policies in order."""
        return b", ".join(
            item % _numbers(decided) for item, decided in zip(self._items, items, strict=True)
        )


def _numbers(decision: PolicyDecision) -> tuple[int, int]:
    """A policy's `r` and `t`: what is left, and the whole seconds until restored.

    `t` runs until the same request would be allowed when the policy denied it,
    otherwise until the quota is whole; rounded up, so a client is never early.
    """
    seconds = decision.reset_after if decision.allowed else decision.retry_after
    return max(0, decision.remaining), (math.ceil(seconds) if seconds > 0 else 0)


@functools.lru_cache(maxsize=256)
def _template(
    policies: tuple[tuple[Policy, str], ...], standard: bool, legacy: bool
) -> HeaderTemplate:
    """The template of a policy set met only in a decision (not configured ahead)."""
    return HeaderTemplate([policy for policy, _ in policies], standard=standard, legacy=legacy)


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
    template = _template(_named(decision), standard, legacy)
    return [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in template.written(decision)
    ]
