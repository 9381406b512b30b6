"""Header fields for decisions, per draft-ietf-httpapi-ratelimit-headers-10."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scalepy.ratelimit import (
    GCRA,
    Decision,
    FixedWindow,
    Outcome,
    Policy,
    PolicyDecision,
    SlidingWindow,
    TokenBucket,
)

# The pure header renderers, tested directly field by field; the middleware only calls them.
from scalepy.ratelimit._headers import (
    HeaderTemplate,
    check_policy_names,
    legacy_headers,
    policy_name,
    rate_limit_headers,
    ratelimit_field,
    ratelimit_policy_field,
    retry_after_seconds,
)

BURST = TokenBucket(capacity=20, refill_rate=10.0, name="burst")
DAILY = SlidingWindow(limit=1000, window=86400)


def verdict(
    policy: Policy, remaining: int, *, retry_after: float = 0.0, reset_after: float = 0.0
) -> PolicyDecision:
    """One policy's decision, allowed unless it has a retry delay."""
    return PolicyDecision(
        policy=policy,
        allowed=retry_after == 0,
        remaining=remaining,
        retry_after=retry_after,
        reset_after=reset_after,
    )


def decision(*verdicts: PolicyDecision) -> Decision:
    """The combined decision, as the limiter forms it."""
    allowed = all(item.allowed for item in verdicts)
    return Decision.combine(verdicts, Outcome.ALLOWED if allowed else Outcome.LIMITED)


ALLOWED = decision(verdict(BURST, 19, reset_after=0.1), verdict(DAILY, 999, reset_after=86400.0))
DENIED = decision(
    verdict(BURST, 0, retry_after=0.25, reset_after=2.0), verdict(DAILY, 990, reset_after=86.2)
)


def test_policy_field_one_item_per_policy() -> None:
    """Names come from the policy or its position; q and w are integers."""
    assert '"burst";q=20;w=2, "p1";q=1000;w=86400' == ratelimit_policy_field(ALLOWED)


def test_ratelimit_field_when_allowed() -> None:
    """The r parameter is what is left and t the seconds until the quota is whole, rounded up."""
    assert '"burst";r=19;t=1, "p1";r=999;t=86400' == ratelimit_field(ALLOWED)


def test_ratelimit_field_when_denied() -> None:
    """A denying policy's t is when a retry may succeed; the others keep their reset."""
    assert '"burst";r=0;t=1, "p1";r=990;t=87' == ratelimit_field(DENIED)


def test_fractional_window_rounds_up() -> None:
    """A window of 20/3 s is advertised as 7 s, and a sub-second one as 1 s."""
    third = TokenBucket(capacity=20, refill_rate=3.0)
    fast = GCRA(limit=10, period=0.5, name="fast")
    result = decision(verdict(third, 5, reset_after=0.0), verdict(fast, 9, reset_after=0.05))
    assert '"p0";q=20;w=7, "fast";q=10;w=1' == ratelimit_policy_field(result)
    assert '"p0";r=5;t=0, "fast";r=9;t=1' == ratelimit_field(result)


def test_a_fixed_window_shows_its_limit_and_window() -> None:
    """The fixed window's quota q is its limit, w its length; t counts to the window's end."""
    minute = FixedWindow(limit=100, window=90.5, name="minute")
    result = decision(verdict(minute, 0, retry_after=12.25, reset_after=12.25))
    assert '"minute";q=100;w=91' == ratelimit_policy_field(result)
    assert '"minute";r=0;t=13' == ratelimit_field(result)


def test_names_are_escaped_as_structured_strings() -> None:
    """Quotes and backslashes in a name are escaped."""
    odd = SlidingWindow(limit=5, window=60, name='a "b" \\c')
    assert '"a \\"b\\" \\\\c";q=5;w=60' == ratelimit_policy_field(decision(verdict(odd, 4)))


def test_negative_remaining_is_shown_as_zero() -> None:
    """The remaining count is never shown negative."""
    assert '"burst";r=0;t=0' == ratelimit_field(decision(verdict(BURST, -3)))


@pytest.mark.parametrize(("seconds", "expected"), [(0.001, 1), (1.0, 1), (1.2, 2), (0.0, 1)])
def test_retry_after_is_whole_seconds_at_least_one(seconds: float, expected: int) -> None:
    """Retry-After rounds up and never tells a client to retry at once."""
    denied = replace(DENIED, retry_after=seconds)
    assert expected == retry_after_seconds(denied)


def test_legacy_headers_when_allowed() -> None:
    """The most restrictive policy, with Reset until every quota is whole."""
    expected = [
        ("x-ratelimit-limit", "20"),
        ("x-ratelimit-remaining", "19"),
        ("x-ratelimit-reset", "86400"),
    ]
    assert expected == legacy_headers(ALLOWED)


def test_legacy_headers_when_denied() -> None:
    """Reset is the retry delay when denied."""
    expected = [
        ("x-ratelimit-limit", "20"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1"),
    ]
    assert expected == legacy_headers(DENIED)


def test_all_headers_for_a_denial() -> None:
    """Retry-After first, then the standard fields, then the legacy ones."""
    expected = [
        ("retry-after", "1"),
        ("ratelimit-policy", '"burst";q=20;w=2, "p1";q=1000;w=86400'),
        ("ratelimit", '"burst";r=0;t=1, "p1";r=990;t=87'),
        ("x-ratelimit-limit", "20"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "1"),
    ]
    assert expected == rate_limit_headers(DENIED, legacy=True)


def test_headers_can_be_turned_off() -> None:
    """An allowed decision with both families off has no headers."""
    assert [] == rate_limit_headers(ALLOWED, standard=False)


def test_no_standard_fields_without_policy_detail() -> None:
    """A decision without per-policy detail has nothing to advertise."""
    empty = Decision(
        allowed=True,
        limit=1,
        remaining=1,
        retry_after=0.0,
        reset_after=0.0,
        policies=(),
        outcome=Outcome.ALLOWED,
    )
    assert [] == rate_limit_headers(empty)


def test_policy_name_falls_back_to_position() -> None:
    """Unnamed policies are p<index>."""
    assert ("burst", "p3") == (policy_name(BURST, 0), policy_name(DAILY, 3))


def test_check_policy_names_accepts_distinct_names() -> None:
    """Distinct printable names pass."""
    check_policy_names([BURST, DAILY])


def test_check_policy_names_refuses_duplicates() -> None:
    """Two policies under one name could not be told apart by clients."""
    clash = SlidingWindow(limit=5, window=60, name="p1")
    with pytest.raises(ValueError, match="distinct names, got p1 more than once"):
        check_policy_names([BURST, DAILY, clash])


def test_check_policy_names_refuses_non_ascii() -> None:
    """Structured-field strings hold printable ASCII only."""
    with pytest.raises(ValueError, match="printable ASCII"):
        check_policy_names([SlidingWindow(limit=5, window=60, name="café")])


def test_template_writes_what_rate_limit_headers_lists() -> None:
    """The middleware's encoded headers equal the listed ones, `%` in a name included."""
    odd = TokenBucket(capacity=20, refill_rate=10.0, name="50%d")
    allowed = decision(verdict(odd, 7, reset_after=1.5))
    denied = decision(verdict(odd, 0, retry_after=0.25, reset_after=2.0), verdict(DAILY, 9))
    for result in (allowed, denied):
        for legacy in (False, True):
            policies = tuple(item.policy for item in result.policies)
            template = HeaderTemplate(policies, standard=True, legacy=legacy)
            expected = [
                (name.encode(), value.encode())
                for name, value in rate_limit_headers(result, legacy=legacy)
            ]
            assert expected == template.encode(result)
    assert (b"ratelimit", b'"50%d";r=7;t=2') == HeaderTemplate(
        (odd,), standard=True, legacy=False
    ).encode(allowed)[1]


def test_template_of_other_policies_writes_the_decisions_own() -> None:
    """A decision under policies other than the template's is written from its own."""
    template = HeaderTemplate((BURST,), standard=True, legacy=False)
    expected = [(name.encode(), value.encode()) for name, value in rate_limit_headers(DENIED)]
    assert expected == template.encode(DENIED)
