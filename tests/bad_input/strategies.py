"""Hypothesis strategies for hostile input: odd text, amounts, currencies, JSON for Struct
fields, and whole protobuf messages built from their descriptors (so every field of every
request message gets exercised, unknown enum values and out-of-range timestamps included)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor as pb_descriptor
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = pb_descriptor.FieldDescriptor

# Text a careless or hostile client sends. No lone surrogates: protobuf cannot even encode them.
ODD_TEXT = [
    "", " ", "\x00", "a\x00b", "\t\r\n", "\x7f", "\x1b[31m", "NaN", "Infinity", "-1", "1e309", "null", "{}", "[]",
    "١٢٣", "９", "\u202egnp.exe", "\u200b", "\ufeff", "a\u0301", "😀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ǅ", "İ", "ß", "%s%n%x",
    "../../etc/passwd", "'; DROP TABLE decisions; --", "\\", "\"", "<script>", "*", "?", "#", "%00", "%",
    "dec_", "apr_", "sk_test_", "sha256:", "x" * 257, "é" * 300,
]
CHARS = st.characters(exclude_categories=("Cs",))
PLAIN_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7e)


def text(max_size: int = 24, nul: bool = True) -> st.SearchStrategy[str]:
    """Short odd text; sometimes a long run that crosses the 256/2000-character limits."""
    odd = ODD_TEXT if nul else [t for t in ODD_TEXT if "\x00" not in t]
    chars = CHARS if nul else st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
    return st.one_of(
        st.sampled_from(odd),
        st.text(chars, max_size=max_size),
        st.text(PLAIN_CHARS, min_size=1, max_size=max_size),
        st.sampled_from([250, 255, 256, 257, 1999, 2000, 2001, 4000]).flatmap(
            lambda n: st.sampled_from(["x", "é", "😀"]).map(lambda c: c * n)),
    )


def amounts() -> st.SearchStrategy[str]:
    valid = st.decimals(min_value=0, max_value=10**17, places=2, allow_nan=False, allow_infinity=False).map(str)
    odd = st.sampled_from([
        "", "0", "0.00000001", "0.000000001", "-1", "-0", "+1", "1.", ".5", "1e3", "1E-2", "1,000", " 1", "1 ",
        "NaN", "nan", "Infinity", "-Infinity", "sNaN", "0x10", "9" * 18, "9" * 19, "9" * 18 + ".99999999",
        "9" * 300, "١٢٣", "９００", "1\u0660", "½", "1_000", "12.34.56", "€12",
    ])
    other_digits = st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=6)  # `٣`, `９`, `²`
    return st.one_of(valid, odd, other_digits, text(8))


def currencies() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(["USD", "EUR", "GBP", "JPY", "", "usd", "US", "USDX", "ÜSD", "123", "U\x00D",
                                      "ＵＳＤ"]), text(4))


# ---------------------------------------------------------------- JSON for google.protobuf.Struct

def _keys() -> st.SearchStrategy[str]:
    return st.one_of(text(12), st.sampled_from(["k" * 256, "k" * 257, "é" * 257, "", "a.b", "[0]"]))


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60).map(float), text(12))
SAFE = 2**53 - 1  # I-JSON's exact range; numbers beyond it are refused (send them as strings)
VALID_SCALARS = st.one_of(st.none(), st.booleans(), st.floats(-SAFE, SAFE), text(12, nul=False))
NON_NUMERIC_SCALARS = st.one_of(st.none(), st.booleans(), text(12))


def json_values(scalars: st.SearchStrategy = JSON_SCALARS, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys(), inner, max_size=4)),
                        max_leaves=max_leaves)


def nested(depth: int, leaf: Any = "x") -> dict:
    """A dict `depth` levels deep counting the leaf (json_depth(nested(n)) == n)."""
    value: Any = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def structs(scalars: st.SearchStrategy = JSON_SCALARS) -> st.SearchStrategy[dict]:
    """Struct contents: small and odd, deep (around the depth limit), or wide (around the key limit).
    Never deeper than protobuf itself decodes (about 33 levels inside a request)."""
    return st.one_of(
        st.dictionaries(_keys(), json_values(scalars), max_size=5),
        st.integers(2, 24).map(nested).map(lambda v: v if isinstance(v, dict) else {"a": v}),
        st.integers(995, 1005).map(lambda n: {f"k{i}": float(i) for i in range(n)}),
        st.integers(990, 1005).map(lambda n: {"list": [True] * n}),
    )


def json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 1


def json_items(value: Any) -> int:
    """Keys of every object plus items of every list (what the key limit counts)."""
    if isinstance(value, dict):
        return len(value) + sum(json_items(v) for v in value.values())
    if isinstance(value, list | tuple):
        return len(value) + sum(json_items(v) for v in value)
    return 0


def json_walk(value: Any):
    """Every key and scalar in a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield ("key", k)
            yield from json_walk(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from json_walk(v)
    else:
        yield ("scalar", value)


def to_struct(value: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


# ---------------------------------------------------------------- whole messages from descriptors

_I32, _I64, _U32, _U64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1), (0, 2**32 - 1), (0, 2**64 - 1)
INT_RANGES = {
    FD.TYPE_INT32: _I32, FD.TYPE_SINT32: _I32, FD.TYPE_SFIXED32: _I32,
    FD.TYPE_INT64: _I64, FD.TYPE_SINT64: _I64, FD.TYPE_SFIXED64: _I64,
    FD.TYPE_UINT32: _U32, FD.TYPE_FIXED32: _U32, FD.TYPE_UINT64: _U64, FD.TYPE_FIXED64: _U64,
}
# Timestamp bounds of google.protobuf.Timestamp (0001-01-01 … 9999-12-31).
TS_MIN, TS_MAX = -62135596800, 253402300799


def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    edges = [v for v in (lo, hi, -1, 0, 1, 2, 1000, 2**31 - 1, 2**32) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(max(lo, -1000), min(hi, 10**6)), st.integers(lo, hi))


def _string_for(field: pb_descriptor.FieldDescriptor, hints: dict, nul: bool) -> st.SearchStrategy[str]:
    name = field.name
    options = [text(nul=nul)]
    if name in hints:
        options.insert(0, hints[name])
    if name in ("amount", "daily_limit", "monthly_limit"):
        options.insert(0, amounts())
    elif name == "currency":
        options.insert(0, currencies())
    return st.one_of(*options)


def _scalar(field: pb_descriptor.FieldDescriptor, hints: dict, nul: bool) -> st.SearchStrategy:
    t = field.type
    if t == FD.TYPE_STRING:
        return _string_for(field, hints, nul)
    if t == FD.TYPE_BYTES:
        return hints.get(field.name, st.binary(max_size=64))
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.one_of(st.sampled_from([0.0, 0.5, 1.0, -0.0, 1.0000001, -1.0, float("nan"), float("inf")]),
                         st.floats(width=32 if t == FD.TYPE_FLOAT else 64))
    if t == FD.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from([-1, max(known) + 1, 99, 2**31 - 1, -(2**31)]))
    lo, hi = INT_RANGES[t]
    return _ints(lo, hi)


@st.composite
def messages(draw, descriptor: pb_descriptor.Descriptor, hints: dict | None = None, depth: int = 0,
             nul: bool = True, struct_scalars: st.SearchStrategy = JSON_SCALARS) -> Message:
    """A message of `descriptor` with random fields set; `hints` maps field names to strategies
    of plausible values (ids that exist, a real bundle, …) mixed in with the odd ones."""
    from google.protobuf import message_factory

    hints = hints or {}
    cls = message_factory.GetMessageClass(descriptor)
    msg = cls()
    full = descriptor.full_name
    if full == "google.protobuf.Struct":
        msg.update(draw(structs(struct_scalars)))
        return msg
    if full == "google.protobuf.Timestamp":
        msg.seconds = draw(st.one_of(st.integers(TS_MIN, TS_MAX), st.sampled_from([TS_MIN - 1, TS_MAX + 1, -(2**62)])))
        msg.nanos = draw(st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 10**9])))
        return msg
    if full == "google.protobuf.Duration":
        msg.seconds = draw(st.one_of(st.integers(-(10**6), 10**8), st.sampled_from([-(2**62), 315576000001])))
        msg.nanos = draw(st.integers(-999_999_999, 999_999_999))
        return msg
    if full == "google.protobuf.FieldMask":
        msg.paths.extend(draw(st.lists(st.one_of(hints.get("paths", text(12, nul=nul)), text(12, nul=nul)),
                                       max_size=3)))
        return msg
    oneofs_done: set[str] = set()
    for field in descriptor.fields:
        if field.containing_oneof is not None:
            group = field.containing_oneof.name
            if group in oneofs_done or not draw(st.booleans()):
                continue
            oneofs_done.add(group)
        elif not draw(st.integers(0, 3)):  # leave about a quarter of the fields unset
            continue
        if field.name in hints and field.type == FD.TYPE_MESSAGE:
            getattr(msg, field.name).CopyFrom(draw(hints[field.name]))
            continue
        is_map = field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry
        if is_map:
            key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            target = getattr(msg, field.name)
            key_hints = {"key": hints[f"{field.name}.key"]} if f"{field.name}.key" in hints else {}
            value_hints = {"value": hints[f"{field.name}.value"]} if f"{field.name}.value" in hints else {}
            for _ in range(draw(st.integers(0, 3))):
                k = draw(_scalar(key_f, key_hints, nul))
                if value_f.type == FD.TYPE_MESSAGE:
                    target[k].CopyFrom(draw(messages(value_f.message_type, hints, depth + 1, nul, struct_scalars)))
                else:
                    target[k] = draw(_scalar(value_f, value_hints, nul))
            continue
        if field.is_repeated:
            n = draw(st.integers(0, 3))
            if field.type == FD.TYPE_MESSAGE:
                if depth < 3:
                    for _ in range(n):
                        getattr(msg, field.name).add().CopyFrom(
                            draw(messages(field.message_type, hints, depth + 1, nul, struct_scalars)))
            else:
                getattr(msg, field.name).extend(draw(st.lists(_scalar(field, hints, nul), max_size=n)))
            continue
        if field.type == FD.TYPE_MESSAGE:
            if depth < 3:
                getattr(msg, field.name).CopyFrom(
                    draw(messages(field.message_type, hints, depth + 1, nul, struct_scalars)))
            continue
        setattr(msg, field.name, draw(_scalar(field, hints, nul)))
    return msg
