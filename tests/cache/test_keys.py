"""Cache keys: a canonical, typed, injective encoding of bound arguments."""

from __future__ import annotations

import datetime
import decimal
import enum
import itertools
import re
import string
import uuid
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

# The internal key encoding, tested directly: its canonical form is what must be injective.
from scalepy.cache._keys import MAX_ARGUMENTS_LENGTH, KeyBuilder, canonical, template_fields
from scalepy.errors import ConfigurationError

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary()
    | st.uuids()
    | st.datetimes()
    | st.dates()
    | st.decimals(allow_nan=False)
)
hashables = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
    ),
    max_leaves=10,
)


def typed(value: Any) -> Any:
    """A structure equal for two values exactly when their types and contents are."""
    kind = type(value)
    if kind is float:
        return (kind, repr(value))
    if kind in (list, tuple):
        return (kind, tuple(typed(item) for item in value))
    if kind is dict:
        return (kind, frozenset((typed(k), typed(v)) for k, v in value.items()))
    if kind in (set, frozenset):
        return (kind, frozenset(typed(item) for item in value))
    if kind is decimal.Decimal:
        return (kind, str(value))
    return (kind, value)


@given(values, values)
def test_encoding_is_injective_on_typed_values(a: Any, b: Any) -> None:
    """Two values share an encoding exactly when their types and contents are equal."""
    assert (typed(a) == typed(b)) == (canonical(a) == canonical(b))


@given(st.lists(values, max_size=4), st.lists(values, max_size=4))
def test_concatenated_encodings_split_one_way_only(a: list[Any], b: list[Any]) -> None:
    """Encodings are self-delimiting: argument lists concatenate injectively."""
    joined_a = "".join(canonical(value) for value in a)
    joined_b = "".join(canonical(value) for value in b)
    assert ([typed(v) for v in a] == [typed(v) for v in b]) == (joined_a == joined_b)


@given(values)
def test_every_encoding_is_valid_utf8(value: Any) -> None:
    """Keys always travel to Redis, even for strings with lone surrogates."""
    canonical(value).encode()


def test_equal_values_of_different_types_differ() -> None:
    """1, 1.0, True, "1", b"1", Decimal(1), [1] and (1,) are eight different keys."""
    samples = [1, 1.0, True, "1", b"1", decimal.Decimal(1), [1], (1,)]
    assert len(samples) == len({canonical(sample) for sample in samples})
    assert canonical(0.0) != canonical(-0.0)
    assert canonical("\ud800") != canonical("\\ud800")


def test_order_of_dicts_and_sets_does_not_matter() -> None:
    """Dicts and sets are encoded by sorted members."""
    assert canonical({"a": 1, "b": 2}) == canonical({"b": 2, "a": 1})
    assert canonical({3, 1, 2}) == canonical({2, 3, 1})
    assert canonical({3, 1, 2}) != canonical(frozenset({3, 1, 2}))


class Color(enum.Enum):
    """An enum for key tests."""

    RED = 1


class Shade(enum.IntEnum):
    """An int enum with the same value as Color.RED."""

    RED = 1


class Point(NamedTuple):
    """A tuple subclass."""

    x: int
    y: int


def test_enums_subclasses_and_standard_types_have_keys() -> None:
    """Enum members carry their class; tuple subclasses too; dates, UUIDs and durations work."""
    assert canonical(Color.RED) != canonical(Shade.RED)
    assert canonical(Shade.RED) != canonical(1)
    assert canonical(Point(1, 2)) != canonical((1, 2))
    assert "u" + uuid.UUID(int=5).hex == canonical(uuid.UUID(int=5))
    assert canonical(datetime.timedelta(days=1)) != canonical(datetime.timedelta(seconds=86_399))
    assert canonical(datetime.time(12, 30)) == "m12:30:00;"


def test_unsupported_argument_types_raise_configuration_error() -> None:
    """An object without a canonical form asks for a custom key."""
    with pytest.raises(ConfigurationError, match="give the cached function key="):
        canonical(object())
    with pytest.raises(ConfigurationError, match="object argument"):
        canonical([1, {"nested": object()}])


async def sample(a: int, b: str = "x", *rest: int, c: bool = False, **extra: Any) -> None:
    """A function with every kind of parameter."""


def test_positional_keyword_and_default_spellings_give_one_key() -> None:
    """Binding applies defaults, so every spelling of one call shares a key."""
    keys = KeyBuilder(sample)
    spellings: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {}),
        ((1, "x"), {}),
        ((), {"a": 1}),
        ((), {"b": "x", "a": 1}),
        ((1,), {"c": False}),
    ]
    assert 1 == len({keys(args, kwargs) for args, kwargs in spellings})
    assert keys((1,), {"z": 1, "y": 2}) == keys((1,), {"y": 2, "z": 1})
    assert keys((1, "x", 2), {}) != keys((1, "x"), {})
    assert keys((1,), {"c": True}) != keys((1,), {})


simple_arguments = st.tuples(values, values)


@given(simple_arguments, simple_arguments)
def test_keys_are_injective_on_bound_arguments(
    first: tuple[Any, Any], second: tuple[Any, Any]
) -> None:
    """Different bound arguments give different keys, equal ones the same key."""

    async def function(a: Any, b: Any = None) -> None: ...

    keys = KeyBuilder(function)
    key_a = keys(first, {})
    key_b = keys((second[0],), {"b": second[1]})
    assert ([typed(v) for v in first] == [typed(v) for v in second]) == (key_a == key_b)


def test_self_and_cls_are_not_part_of_the_key() -> None:
    """Methods share entries across instances."""

    class Repository:
        async def load(self, item: int) -> None: ...

    keys = KeyBuilder(Repository.load)
    assert keys((Repository(), 1), {}) == keys((Repository(), 1), {})
    assert keys((object(), 1), {}).endswith(":i1;")


def test_long_arguments_are_digested() -> None:
    """Arguments encoded beyond the limit become a fixed-length digest; the name stays readable."""
    keys = KeyBuilder(sample)
    long_key = keys(("y" * MAX_ARGUMENTS_LENGTH,), {})
    assert long_key.startswith(f"{__name__}.sample:#")
    assert len(long_key) == len(f"{__name__}.sample:#") + 32
    assert long_key != keys(("y" * MAX_ARGUMENTS_LENGTH + "y",), {})


def test_version_and_qualname_prefix_the_key() -> None:
    """The key names the function (and its version)."""
    assert f"{__name__}.sample:i1;s1:xt0:Fd0:" == KeyBuilder(sample)((1,), {})
    assert KeyBuilder(sample, version=2)((1,), {}).startswith(f"{__name__}.sample@2:")


def test_templates_and_callables_make_custom_keys() -> None:
    """A template is formatted with bound arguments (defaults included); a callable is called."""
    assert "user:7:x" == KeyBuilder(sample, key="user:{a}:{b}")((), {"a": 7})
    assert "k-7" == KeyBuilder(sample, key=lambda a, **_: f"k-{a}")((), {"a": 7})


def test_templates_are_checked_when_decorating() -> None:
    """Unknown, positional or malformed fields are configuration errors."""
    with pytest.raises(ConfigurationError, match="names missing, which is not a parameter"):
        KeyBuilder(sample, key="user:{missing}")
    with pytest.raises(ConfigurationError, match="must name its fields"):
        KeyBuilder(sample, key="user:{}")
    with pytest.raises(ConfigurationError, match="malformed key template"):
        KeyBuilder(sample, key="user:{a")
    assert ("a", "b") == template_fields("{a.real}-{b[0]}")


def test_a_call_that_does_not_fit_the_signature_raises_type_error() -> None:
    """Binding errors surface as the TypeError Python would raise."""
    with pytest.raises(TypeError):
        KeyBuilder(sample)((), {})


async def item(a: Any, b: Any, c: Any = "") -> None:
    """A function cached under the templates below."""


@pytest.mark.parametrize(
    ("template", "first", "second"),
    [
        ("item:{a}:{b}", ("1:2", "3"), ("1", "2:3")),
        ("item:{a}:{b}", ("1%3A2", "3"), ("1:2", "3")),
        ("{a}-{b}-{c}", ("x-y", "z", ""), ("x", "y-z", "")),
        ("{a}{b}", ("1", "23"), ("12", "3")),
        ("v{a}1{b}", ("2", "13"), ("21", "3")),
        ("{a}%{b}", ("1%2", "3"), ("1", "2%3")),
    ],
)
def test_template_fields_that_spell_a_separator_do_not_share_a_key(
    template: str, first: tuple[str, str, str], second: tuple[str, str, str]
) -> None:
    """item('1:2', '3') and item('1', '2:3') no longer share the entry 'item:1:2:3'."""
    keys = KeyBuilder(item, key=template)
    assert keys(first, {}) != keys(second, {})


template_texts = st.text(alphabet=":-%{}A1Fxyé\\", max_size=5)


def other_readings(template: str, texts: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Field texts that plain `str.format` spells exactly as it spells `texts` (collisions)."""
    parts = list(string.Formatter().parse(template))
    fields = template_fields(template)
    rendered = template.format_map(dict(zip(fields, texts, strict=True)))
    readings = set()
    for lazy in itertools.product((True, False), repeat=len(fields)):
        quantifiers = iter(lazy)
        pattern = "".join(
            re.escape(literal) + ("" if name is None else "(.*?)" if next(quantifiers) else "(.*)")
            for literal, name, _, _ in parts
        )
        match = re.fullmatch(pattern, rendered, re.DOTALL)
        assert match is not None
        readings.add(match.groups())
    return readings


@pytest.mark.parametrize(
    "template", ["item:{a}:{b}", "{a}-{b}:{c}", "{a}{b}{c}", "x{a}xy{b}y", "{a}0{b}F{c}", "{a}%{b}"]
)
@given(texts=st.tuples(template_texts, template_texts, template_texts), other=st.data())
def test_templated_keys_are_injective_on_field_texts(
    template: str, texts: tuple[str, str, str], other: st.DataObject
) -> None:
    """Distinct field texts give distinct keys: the readings that collided before, and any other."""
    fields = template_fields(template)
    keys = KeyBuilder(item, key=template)
    mine = texts[: len(fields)]
    others = other_readings(template, mine)
    others.add(other.draw(st.tuples(*[template_texts] * len(fields))))
    for reading in others:
        assert (reading == mine) == (keys(reading, {}) == keys(mine, {}))


def test_templated_keys_of_simple_values_stay_as_they_were() -> None:
    """Fields without separators read as before; the last field is never escaped."""
    assert "user:42" == KeyBuilder(item, key="user:{a}")((42, 0), {})
    assert "user:1:2" == KeyBuilder(item, key="user:{a}:{b}")(("1", 2), {})
    assert "item:a%3Ab:c:d" == KeyBuilder(item, key="item:{a}:{b}")(("a:b", "c:d"), {})
    assert "item:10%25:x" == KeyBuilder(item, key="item:{a}:{b}")(("10%", "x"), {})
    assert "1~742" == KeyBuilder(item, key="{a}{b}")((7, 42), {})  # adjacent: length-prefixed
    assert "{x}:'1':  2" == KeyBuilder(item, key="{{x}}:{a!r}:{b:>3}")(("1", 2), {})
