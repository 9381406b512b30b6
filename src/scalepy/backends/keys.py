"""Redis key layout: one hash tag per logical object, so its keys share a cluster slot.

A multi-key Lua script only runs on Redis Cluster when all its keys hash to one
slot. Redis hashes only the part between the first `{` and the next `}`, so every
key of one logical object (a rate-limit bucket, a cache entry and its lock, a
queue) carries that object's identity as its hash tag:

    scalepy:rl:api:{client:1.2.3.4}:tokens
    scalepy:rl:api:{client:1.2.3.4}:ts

Identities may contain any character; braces and `%` are percent-escaped so a
user-supplied identity can never open or close a tag of its own, and distinct
identities always give distinct keys. A lone surrogate (JSON's `"\ud800"` decodes to
one), which UTF-8 cannot carry to Redis, is spelled as its code unit's escaped bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalepy.errors import ConfigurationError

__all__ = ("KeySpace", "hash_tag")

_ESCAPES = str.maketrans(
    {
        "%": "%25",
        "{": "%7B",
        "}": "%7D",
        **{
            chr(unit): "".join(
                f"%{byte:02X}" for byte in chr(unit).encode("utf-8", "surrogatepass")
            )
            for unit in range(0xD800, 0xE000)
        },
    }
)


def hash_tag(identity: str) -> str:
    """Return `identity` wrapped as a Redis Cluster hash tag, escaped.

    Args:
        identity: The logical object's identity, any string (may be empty).

    Returns:
        `{identity}` with `%`, `{`, `}` and lone surrogates percent-escaped; an empty
        identity becomes `{%}` because Redis ignores an empty tag.
    """
    return "{" + (identity.translate(_ESCAPES) or "%") + "}"


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Builds the keys of one primitive under a common prefix.

    Example:
        >>> space = KeySpace("scalepy:rl:api")
        >>> space.key("client:1.2.3.4", "tokens")
        'scalepy:rl:api:{client:1.2.3.4}:tokens'
    """

    prefix: str
    """Leading part of every key, e.g. `scalepy:cache:todo:v1`; must not contain braces."""

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(
                f"a key prefix must be non-empty and free of braces, got {self.prefix!r}"
            )

    def key(self, identity: str, *parts: str) -> str:
        """Return the key of `identity`, followed by `parts` joined with `:`.

        Args:
            identity: The logical object the key belongs to (its hash tag).
            *parts: Suffixes naming one key of that object, e.g. `"tokens"`.

        Returns:
            `prefix:{identity}[:part…]`.
        """
        tagged = f"{self.prefix}:{hash_tag(identity)}"
        return ":".join((tagged, *parts)) if parts else tagged

    def keys(self, identity: str, *names: str) -> tuple[str, ...]:
        """Return one key per name, all sharing `identity`'s hash tag (one cluster slot).

        Args:
            identity: The logical object the keys belong to.
            *names: One suffix per key.

        Returns:
            The keys, in the order of `names`.
        """
        tagged = f"{self.prefix}:{hash_tag(identity)}"
        return tuple(f"{tagged}:{name}" for name in names)

    def child(self, *parts: str) -> KeySpace:
        """Return a key space nested under this one, e.g. per namespace or version.

        Args:
            *parts: Segments appended to the prefix.

        Returns:
            A new `KeySpace` whose prefix is `prefix:part…`.
        """
        return KeySpace(":".join((self.prefix, *parts)))
