"""Decisions the library builds by position are the ones their constructors build."""

from __future__ import annotations

from dataclasses import fields

from scalepy.ratelimit import Decision, Outcome, PolicyDecision, TokenBucket
from scalepy.ratelimit._decision import build_policy_decision

BUCKET = TokenBucket(capacity=20, refill_rate=10.0, name="burst")


def test_policy_decision_by_position_is_the_constructed_one() -> None:
    """Every field is set, in declared order: equal, same repr, immutable."""
    built = build_policy_decision(BUCKET, False, 3, 0.25, 2.0)
    expected = PolicyDecision(
        policy=BUCKET, allowed=False, remaining=3, retry_after=0.25, reset_after=2.0
    )
    assert expected == built
    assert repr(expected) == repr(built)
    assert [getattr(expected, f.name) for f in fields(PolicyDecision)] == [
        getattr(built, f.name) for f in fields(PolicyDecision)
    ]


def test_combined_decision_of_one_policy_is_the_constructed_one() -> None:
    """`Decision.combine` of one policy builds what the constructor would, field by field."""
    only = build_policy_decision(BUCKET, True, 19, 0.0, 0.1)
    expected = Decision(
        allowed=True,
        limit=20,
        remaining=19,
        retry_after=0.0,
        reset_after=0.1,
        policies=(only,),
        outcome=Outcome.ALLOWED,
    )
    combined = Decision.combine((only,))
    assert expected == combined
    assert repr(expected) == repr(combined)
    assert hash(expected) == hash(combined)
