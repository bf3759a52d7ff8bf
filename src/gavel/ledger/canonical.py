"""Canonical JSON: the exact bytes Gavel hashes and signs.

This is RFC 8785 (JSON Canonicalization Scheme, JCS) restricted to the values Gavel produces,
with one deliberate rule for money. The canonical form of a value is:

- `None`, `True`, `False` → `null`, `true`, `false`.
- `int` → its decimal digits, with a leading `-` when negative and no `+`, leading zeros or
  exponent. Only ints within ±(2**53 - 1) are accepted: JCS numbers follow ECMAScript (IEEE
  754 doubles), and outside that range two different ints share one double, so two parties
  could read one hash as two values.
- `decimal.Decimal` → a JSON *string* holding `canonical_decimal(d)`: plain digits, no
  exponent, no trailing fractional zeros, no trailing `.`, and `0` for every zero (so
  `Decimal("120.50")` → `"120.5"`, `Decimal("1E+2")` → `"100"`). NaN and infinities are
  refused. Money is never a JSON number, so no reader can round it through a double.
- `float` → refused: a binary float cannot hold most decimal amounts exactly, so two parties
  could hash different values for the same figure.
- `JsonNumber` (a float that arrived as a JSON number from a client, e.g. inside
  `google.protobuf.Struct` args) → the ECMAScript `Number.prototype.toString` form that JCS
  prescribes (`1.5`, `1e+21`, `1e-7`), so a client hashing the same JSON with any JCS library
  gets the same bytes.
- `str` → `"` + the string + `"`, where `"` and `\\` are escaped as `\\"` and `\\\\`,
  U+0008, U+0009, U+000A, U+000C, U+000D as `\\b`, `\\t`, `\\n`, `\\f`, `\\r`, the other
  characters below U+0020 as `\\u00xx` (lower-case hex), and every other character is written
  as itself (no `\\u` escapes for non-ASCII). Lone surrogates are refused (I-JSON).
- `list`/`tuple` → `[` + the members' canonical forms joined by `,` + `]`.
- mapping with `str` keys → `{` + `"key":value` pairs joined by `,` + `}`, keys sorted by their
  UTF-16 code units (as JCS requires: this is *not* code-point order for characters above
  U+FFFF).
- No whitespace anywhere. The text is encoded as UTF-8 without a byte-order mark.

Anything else (other types, non-`str` keys) is refused with `TypeError`; values of an accepted
type that have no canonical form are refused with `ValueError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal

MAX_SAFE_INTEGER = 2**53 - 1

_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonNumber(float):
    """A number received as JSON (not money): canonicalised as JCS/ECMAScript prescribe."""


def ecmascript_number(x: float) -> str:
    """ECMAScript's Number::toString for a finite double (the JCS number form)."""
    if x != x or x in (float("inf"), float("-inf")):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + ecmascript_number(-x)
    mantissa, _, exp_text = repr(float(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    frac = "" if frac == "0" else frac
    all_digits = whole + frac
    zeros = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits[zeros:].rstrip("0")
    n = len(whole) - zeros + (int(exp_text) if exp_text else 0)  # value = 0.digits × 10^n
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def canonical_json(value: object) -> str:
    """Return the canonical JSON text of `value` (see the module docstring)."""
    if _plain(value):
        # For these values the C encoder of `json` writes exactly the canonical form, except
        # that it sorts keys by code point: the same order as UTF-16 unless a character lies
        # outside the BMP, and those texts (and lone surrogates, which JCS refuses) go the long way.
        text = _encode_plain(value)
        if text.isascii() or not _OUTSIDE_BMP_OR_SURROGATE.search(text):
            return text
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _plain(value: object) -> bool:
    """Whether `value` holds only dicts with str keys, lists, tuples, str, bool, None, ints within
    ±(2**53 - 1) and finite Decimals — the exact types, not subclasses."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    # Plain loops rather than all(...): this runs on every decision, and a generator costs more.
    if kind is dict:
        for key, member in value.items():  # type: ignore[attr-defined]  # noqa: SIM110
            if type(key) is not str or not _plain(member):
                return False
        return True
    if kind is list or kind is tuple:
        for member in value:  # type: ignore[attr-defined]  # noqa: SIM110
            if not _plain(member):
                return False
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # type: ignore[operator]
    return kind is Decimal and value.is_finite()  # type: ignore[attr-defined]


_OUTSIDE_BMP_OR_SURROGATE = re.compile("[\ud800-\udfff\U00010000-\U0010ffff]")


def canonical_bytes(value: object) -> bytes:
    """Return the canonical JSON of `value` as UTF-8 bytes: what gets hashed and signed."""
    return canonical_json(value).encode("utf-8")


def canonical_decimal(amount: Decimal) -> str:
    """Return `amount` as plain decimal digits: no exponent, no trailing zeros, no `-0`."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"expected a Decimal, got {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"`{amount}` has no canonical decimal form (not a finite number)")
    # Formatting with "f" and no precision is exact: it never rounds to the context precision,
    # unlike Decimal.normalize().
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# Only Decimals reach `default` (see _plain): they are written as their canonical strings.
_encode_plain = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False,
                                 check_circular=False, default=canonical_decimal).encode


def sha256_hex_digest(data: bytes) -> str:
    """Return `sha256:` followed by the lower-case hex SHA-256 of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write(value: object, parts: list[str]) -> None:
    # bool before int: bool is a subclass of int, and True is not 1 here.
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, int):
        parts.append(_integer(value))
    elif isinstance(value, JsonNumber):
        parts.append(ecmascript_number(value))
    elif isinstance(value, float):
        raise TypeError(
            f"float `{value!r}` cannot be canonicalised: binary floats do not hold decimal "
            "amounts exactly, so use decimal.Decimal (serialised as a string) or int"
        )
    elif isinstance(value, Decimal):
        parts.append(_string(canonical_decimal(value)))
    elif isinstance(value, str):
        parts.append(_string(value))
    elif isinstance(value, list | tuple):
        parts.append("[")
        for index, member in enumerate(value):
            if index:
                parts.append(",")
            _write(member, parts)
        parts.append("]")
    elif isinstance(value, Mapping):
        _write_object(value, parts)
    else:
        raise TypeError(f"`{type(value).__name__}` values have no canonical JSON form")


def _write_object(mapping: Mapping[object, object], parts: list[str]) -> None:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"object keys must be str, got {type(key).__name__} `{key!r}`")
    parts.append("{")
    for index, key in enumerate(sorted(mapping, key=_utf16_sort_key)):
        if index:
            parts.append(",")
        parts.append(_string(key))
        parts.append(":")
        _write(mapping[key], parts)
    parts.append("}")


def _utf16_sort_key(key: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequence of UTF-16 code units does.
    return key.encode("utf-16-be", "surrogatepass")


def _integer(value: int) -> str:
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise ValueError(
            f"integer {value} is outside ±(2**53 - 1): JCS numbers are IEEE 754 doubles, "
            "which cannot represent it exactly; use a Decimal"
        )
    return int.__repr__(value)  # plain digits, even for int subclasses such as IntEnum


def _string(text: str) -> str:
    if _LONE_SURROGATE.search(text):
        raise ValueError(f"string {text!r} holds a lone surrogate, which has no UTF-8 form")
    return '"' + _NEEDS_ESCAPE.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def strict_loads(text: str, *, parse_float: Callable[[str], object]) -> object:
    """Read JSON that is hashed or signed, refusing what parsers disagree on: an object naming a
    member twice (two readers could pick different ones behind one hash) and the non-JSON
    constants `NaN`/`Infinity`. Raises ValueError, also for nesting too deep to read."""
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_names, parse_float=parse_float,
                          parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_duplicate_names(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
