"""Canonical JSON (RFC 8785 subset) and canonical decimals."""

import json
import random
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gavel.ledger.canonical import (
    MAX_SAFE_INTEGER,
    JsonNumber,
    canonical_bytes,
    canonical_decimal,
    canonical_json,
    sha256_hex_digest,
)

# --- RFC 8785 vectors (the parts that fall within Gavel's subset: no floats) -----------------


def test_rfc8785_property_sorting_uses_utf16_code_units():
    # RFC 8785 §3.2.3. U+1F600 is the surrogate pair D83D DE00, so it sorts *before* U+FB33
    # although its code point is larger.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys_in_order = list(json.loads(canonical_json(value)))
    assert keys_in_order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert sorted(value) != keys_in_order  # code-point order would be wrong here


def test_rfc8785_string_escaping():
    # RFC 8785 §3.2.2.2: input "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"
    value = {"string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"}
    assert canonical_json(value) == '{"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'


def test_rfc8785_utf8_output():
    # RFC 8785 §3.2.4: sorting ignores locale; output is UTF-8 with no \u escapes.
    value = {
        "peach": "This sorting order",
        "péché": "is wrong according to French",
        "pêche": "but canonicalization MUST",
        "sin": "ignore locale",
    }
    expected = (
        '{"peach":"This sorting order","péché":"is wrong according to French",'
        '"pêche":"but canonicalization MUST","sin":"ignore locale"}'
    )
    assert canonical_json(value) == expected
    assert canonical_bytes(value) == expected.encode("utf-8")
    assert canonical_bytes({"é": ""}) == b'{"\xc3\xa9":""}'


def test_rfc8785_literals_and_nesting():
    # RFC 8785 §3.2.2 sample, without its floating-point "numbers" member.
    value = {"literals": [None, True, False], "string": '€$\x0f\nA\'B"\\\\"/'}
    assert canonical_json(value) == (
        '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


@pytest.mark.parametrize(
    ("char", "escaped"),
    [
        ("\b", "\\b"),
        ("\t", "\\t"),
        ("\n", "\\n"),
        ("\f", "\\f"),
        ("\r", "\\r"),
        ("\x00", "\\u0000"),
        ("\x1f", "\\u001f"),
        ("\x0b", "\\u000b"),
        ('"', '\\"'),
        ("\\", "\\\\"),
        ("/", "/"),
        ("\x7f", "\x7f"),
        ("\u2028", "\u2028"),
        ("\U0001f600", "\U0001f600"),
    ],
)
def test_string_escapes(char, escaped):
    assert canonical_json(char) == f'"{escaped}"'


def test_lone_surrogate_is_refused():
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json("\ud83d")
    with pytest.raises(ValueError, match="surrogate"):
        canonical_json({"\udc00": 1})


# --- ints -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (-1, "-1"),
        (120, "120"),
        (MAX_SAFE_INTEGER, "9007199254740991"),
        (-MAX_SAFE_INTEGER, "-9007199254740991"),
    ],
)
def test_ints_are_json_numbers(value, text):
    assert canonical_json(value) == text


@pytest.mark.parametrize("value", [2**53, -(2**53), 10**30])
def test_ints_beyond_double_precision_are_refused(value):
    with pytest.raises(ValueError, match="2\\*\\*53"):
        canonical_json(value)


def test_bools_are_not_ints():
    assert canonical_json([True, False, 1, 0]) == "[true,false,1,0]"


def test_int_enum_is_written_as_its_number():
    class Tier(IntEnum):
        HIGH = 3

    assert canonical_json({"tier": Tier.HIGH}) == '{"tier":3}'


# --- decimals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("120.50", "120.5"),
        ("120.00", "120"),
        ("120", "120"),
        ("1E+2", "100"),
        ("1.5E+3", "1500"),
        ("0.000", "0"),
        ("-0", "0"),
        ("-0.00", "0"),
        ("0E+5", "0"),
        ("0.1", "0.1"),
        ("-12.340", "-12.34"),
        ("5E-1", "0.5"),
        ("1E-8", "0.00000001"),
        ("000123.4500", "123.45"),
        # beyond the default 28-digit context: must not be rounded
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_canonical_decimal(amount, text):
    assert canonical_decimal(Decimal(amount)) == text


def test_decimals_are_json_strings():
    assert canonical_json({"amount": Decimal("120.50")}) == '{"amount":"120.5"}'


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_decimals_are_refused(amount):
    with pytest.raises(ValueError, match="finite"):
        canonical_json(Decimal(amount))


def test_canonical_decimal_needs_a_decimal():
    with pytest.raises(TypeError, match="^expected a Decimal, got float$"):
        canonical_decimal(1.5)  # type: ignore[arg-type]


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_canonical_decimal_keeps_the_value_and_has_one_form(amount):
    text = canonical_decimal(amount)
    assert Decimal(text) == amount
    assert "E" not in text and "e" not in text
    assert not text.endswith(".")
    assert "." not in text or not text.endswith("0")
    assert text != "-0"
    assert canonical_decimal(Decimal(text)) == text


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1.5, 0.0, float("nan"), {"amount": 120.5}, [1.0]])
def test_floats_are_refused_with_a_reason(value):
    with pytest.raises(TypeError, match="Decimal"):
        canonical_json(value)


@pytest.mark.parametrize("mapping", [{1: "a"}, {None: "a"}, {("a",): 1}, {b"a": 1}])
def test_non_str_keys_are_refused(mapping):
    with pytest.raises(TypeError, match="keys must be str"):
        canonical_json(mapping)


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), 1j])
def test_other_types_are_refused(value):
    with pytest.raises(TypeError, match=f"^`{type(value).__name__}` values have no canonical JSON form$"):
        canonical_json(value)


# --- structure ------------------------------------------------------------------------------


def test_no_whitespace_and_tuples_are_arrays():
    value = {"b": (1, [2, {}]), "a": {"z": None, "y": []}}
    assert canonical_json(value) == '{"a":{"y":[],"z":null},"b":[1,[2,{}]]}'


def test_any_mapping_is_an_object():
    assert canonical_json(MappingProxyType({"b": 1, "a": 2})) == '{"a":2,"b":1}'


def test_sha256_hex_digest():
    assert sha256_hex_digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


# --- properties -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.tuples(children, children)
        | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


def as_plain_json(value):
    """What json.loads should give back: Decimals as canonical strings, tuples as lists."""
    if isinstance(value, Decimal):
        return canonical_decimal(value)
    if isinstance(value, list | tuple):
        return [as_plain_json(member) for member in value]
    if isinstance(value, dict):
        return {key: as_plain_json(member) for key, member in value.items()}
    return value


@given(json_values)
def test_round_trips_through_json_loads(value):
    assert json.loads(canonical_json(value)) == as_plain_json(value)


@given(json_values)
def test_is_stable(value):
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text
    assert canonical_json(value) == text


@given(st.dictionaries(st.text(), json_scalars, max_size=8), st.randoms())
def test_insertion_order_does_not_matter(mapping, rng: random.Random):
    items = list(mapping.items())
    rng.shuffle(items)
    assert canonical_json(dict(items)) == canonical_json(mapping)


bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(bmp_text, children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_matches_python_json_where_code_point_and_utf16_order_agree(value):
    # An independent oracle: for BMP-only keys, code-point order is UTF-16 order, and Python's
    # json escapes strings exactly as JCS does when ensure_ascii is off.
    expected = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert canonical_json(value) == expected


def reference_canonical_json(value) -> str:
    """The writer that handles every value itself (no shortcut through the `json` module)."""
    from gavel.ledger import canonical

    parts: list[str] = []
    canonical._write(value, parts)
    return "".join(parts)


astral_text = st.text(st.characters(min_codepoint=0xFFF0, max_codepoint=0x1F64F, exclude_categories=["Cs"]))


@given(st.recursive(
    json_scalars | st.builds(JsonNumber, st.floats(allow_nan=False, allow_infinity=False)) | astral_text,
    lambda children: (st.lists(children, max_size=4) | st.tuples(children, children)
                      | st.dictionaries(st.text() | astral_text, children, max_size=4)),
    max_leaves=25,
))
def test_the_shortcut_through_json_writes_exactly_what_the_reference_writer_writes(value):
    # canonical_json hands plain values to the C encoder of `json` and keeps the result unless a
    # character outside the BMP could make code-point key order differ from UTF-16 order.
    assert canonical_json(value) == reference_canonical_json(value)


@pytest.mark.parametrize("value", [
    {"a": 1.5}, [JsonNumber(1e21)], {1: "x"}, {"k": 2**53}, {"k": True, "j": Decimal("NaN")}, "\ud800",
    {"\U0001F600": 1, "\uff61": 2},
])
def test_values_outside_the_shortcut_get_the_reference_answer_or_its_error(value):
    try:
        expected = reference_canonical_json(value)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected
