"""Key layout: one escaped hash tag per logical object."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from scalepy.backends import KeySpace, hash_tag
from scalepy.errors import ConfigurationError


def _tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: between the first { and the next }."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start + 1)]


@given(st.text())
def test_hash_tag_contains_no_braces_inside(identity: str) -> None:
    """An identity can never open or close a tag of its own."""
    inner = hash_tag(identity)[1:-1]
    assert "{" not in inner
    assert "}" not in inner
    assert inner  # Redis ignores an empty tag


@given(st.text(st.characters(exclude_categories=())), st.text(st.characters(exclude_categories=())))
def test_distinct_identities_give_distinct_keys(first: str, second: str) -> None:
    """Escaping is injective: different identities never share a key."""
    space = KeySpace("scalepy:test")
    assert (first == second) == (space.key(first, "x") == space.key(second, "x"))


@given(st.text(), st.lists(st.text(alphabet="abcxyz:", min_size=1), min_size=1, max_size=4))
def test_keys_of_one_identity_share_a_cluster_slot(identity: str, names: list[str]) -> None:
    """Every key of one object hashes to the same slot."""
    keys = KeySpace("scalepy:rl").keys(identity, *names)
    assert 1 == len({key_slot(key.encode()) for key in keys})
    assert {hash_tag(identity)[1:-1]} == {_tag(key) for key in keys}


@given(st.text(st.characters(codec=None, exclude_categories=())))
def test_every_identity_gives_a_key_redis_can_carry(identity: str) -> None:
    """Lone surrogates included: the key is valid UTF-8, and escaping stays injective."""
    key = KeySpace("scalepy:test").key(identity, "x")
    key.encode("utf-8")  # raises on a lone surrogate left in the key
    assert key == KeySpace("scalepy:test").key(identity, "x")
    assert "scalepy:test:{%ED%A0%80}:x" == KeySpace("scalepy:test").key("\ud800", "x")
    assert KeySpace("scalepy:test").key("%ED%A0%80") != KeySpace("scalepy:test").key("\ud800")


def test_key_spaces_compose() -> None:
    """Keys read prefix, tag, parts; child spaces extend the prefix."""
    space = KeySpace("scalepy:cache").child("todo", "v2")
    assert "scalepy:cache:todo:v2:{42}:value" == space.key("42", "value")
    assert "scalepy:cache:todo:v2:{42}" == space.key("42")
    assert "scalepy:x:{%7Ba%7D%25}" == KeySpace("scalepy:x").key("{a}%")
    assert "scalepy:x:{%}" == KeySpace("scalepy:x").key("")


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b"])
def test_prefixes_with_braces_are_rejected(prefix: str) -> None:
    """A prefix must not carry a tag of its own."""
    with pytest.raises(ConfigurationError, match="free of braces"):
        KeySpace(prefix)
