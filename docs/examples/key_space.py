"""Redis keys: every key of one logical object shares one hash tag, hence one cluster slot."""

from __future__ import annotations

from scalepy.backends import KeySpace, hash_tag
from scalepy.errors import ConfigurationError


def main() -> None:
    """Build keys with `KeySpace` and show how identities are escaped."""
    limiter = KeySpace("scalepy:rl:api")
    assert limiter.key("client:1.2.3.4", "tokens") == "scalepy:rl:api:{client:1.2.3.4}:tokens"

    # keys() builds several keys of one object at once: one tag, so one slot.
    tokens, stamp = limiter.keys("client:1.2.3.4", "tokens", "ts")
    assert (tokens, stamp) == (
        "scalepy:rl:api:{client:1.2.3.4}:tokens",
        "scalepy:rl:api:{client:1.2.3.4}:ts",
    )

    # child() nests a namespace or a version under the prefix.
    todos = KeySpace("scalepy:cache").child("todo", "v1")
    assert todos.key("42") == "scalepy:cache:todo:v1:{42}"

    # User-supplied identities cannot open or close a tag of their own.
    assert hash_tag("evil}{x") == "{evil%7D%7Bx}"
    assert hash_tag("100%") == "{100%25}"  # so distinct identities stay distinct
    assert hash_tag("") == "{%}"  # Redis ignores an empty tag

    try:
        KeySpace("bad{prefix}")
    except ConfigurationError as exc:
        assert "free of braces" in str(exc)
    else:
        raise AssertionError("a prefix with braces must be rejected")


if __name__ == "__main__":
    main()
