"""Runtime values of the language and the operators on them.

Numbers are `Decimal` (never float), strings `str`, booleans `bool`, null `None`, durations
`timedelta`, times aware `datetime` (UTC), lists `tuple`, sets `frozenset`, objects `dict`.
Python treats `True == 1`; the language does not, so equality and membership here are strict.

Null follows LANGUAGE.md §Absence: `==`/`!=` compare it like any value, ordering with null is
false, arithmetic with null is null, `null in S` is false. Anything else that cannot be
computed raises `EvalError`, which the engine turns into a fail-closed deny.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

DECIMAL_CONTEXT = decimal.Context(
    prec=38, rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


class EvalError(Exception):
    """A value could not be computed (type clash at run time, division by zero, …)."""


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, timedelta):
        return "duration"
    if isinstance(v, datetime):
        return "time"
    if isinstance(v, tuple):
        return "list"
    if isinstance(v, frozenset):
        return "set"
    if isinstance(v, Mapping):
        return "object"
    return type(v).__name__


def from_data(v: Any) -> Any:
    """Convert request/fact data (JSON-ish Python) into language values."""
    if v is None or isinstance(v, bool | str | Decimal):
        return v
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise EvalError("non-finite number in input")
        return Decimal(repr(v))
    if isinstance(v, Mapping):
        return {str(k): from_data(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return tuple(from_data(x) for x in v)
    if isinstance(v, set | frozenset):
        return frozenset(from_data(x) for x in v)
    if isinstance(v, datetime | timedelta):
        return v
    raise EvalError(f"unsupported input value of type {type(v).__name__}")


def to_number(v: Any) -> Decimal | None:
    """Numbers from data: decimals, ints, exact float reprs, or decimal strings."""
    if v is None or isinstance(v, Decimal):
        return v
    if isinstance(v, bool):
        raise EvalError("expected a number, found bool")
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, float):
        return from_data(v)
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except decimal.InvalidOperation:
            raise EvalError(f"`{v}` is not a decimal number") from None
        if not d.is_finite():
            raise EvalError(f"`{v}` is not a finite number")
        return d
    raise EvalError(f"expected a number, found {type_name(v)}")


def equal(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return len(a) == len(b) and all(member(x, b) for x in a)
    return a == b


def member(item: Any, coll: Any) -> bool:
    if item is None or coll is None:
        return False
    if isinstance(coll, frozenset):
        if type(item) is bool:
            return any(type(e) is bool and e is item for e in coll)
        try:
            found = item in coll
        except TypeError:  # lists and objects are never members of a set
            return False
        if found:
            return not isinstance(item, Decimal) or item not in (0, 1) or any(
                type(e) is not bool and e == item for e in coll)
        return False
    if isinstance(coll, tuple):
        return any(equal(item, e) for e in coll)
    if isinstance(coll, Mapping):
        return isinstance(item, str) and item in coll
    raise EvalError(f"`in` needs a list or set, found {type_name(coll)}")


_ORDERABLE = (Decimal, str, timedelta, datetime)


def order(op: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    mismatched = type(a) is bool or type(b) is bool or not isinstance(a, _ORDERABLE) or type(a) is not type(b)
    if mismatched and not (isinstance(a, datetime) and isinstance(b, datetime)):
        raise EvalError(f"cannot order {type_name(a)} and {type_name(b)}")
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    try:
        if isinstance(a, Decimal) and isinstance(b, Decimal):
            if op == "+":
                return DECIMAL_CONTEXT.add(a, b)
            if op == "-":
                return DECIMAL_CONTEXT.subtract(a, b)
            if op == "*":
                return DECIMAL_CONTEXT.multiply(a, b)
            return DECIMAL_CONTEXT.divide(a, b)
        if isinstance(a, timedelta) and isinstance(b, Decimal) and op in ("*", "/"):
            seconds = Decimal(a.total_seconds())
            seconds = seconds * b if op == "*" else DECIMAL_CONTEXT.divide(seconds, b)
            return timedelta(seconds=float(seconds))
        if op == "+" and isinstance(a, datetime | timedelta) and isinstance(b, timedelta):
            return a + b
        if op == "+" and isinstance(a, timedelta) and isinstance(b, datetime):
            return b + a
        if op == "-" and isinstance(a, datetime | timedelta) and isinstance(b, timedelta | datetime):
            if isinstance(a, timedelta) and isinstance(b, datetime):
                raise EvalError("cannot subtract a time from a duration")
            return a - b
    except decimal.DivisionByZero:
        raise EvalError("division by zero") from None
    except (decimal.InvalidOperation, decimal.Overflow, OverflowError) as exc:
        raise EvalError(f"arithmetic failed: {type(exc).__name__}") from None
    if type(a) is bool or type(b) is bool or not isinstance(a, Decimal) or not isinstance(b, Decimal):
        raise EvalError(f"`{op}` cannot combine {type_name(a)} and {type_name(b)}")
    raise EvalError(f"`{op}` failed")  # pragma: no cover


def negate(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, Decimal) and type(a) is not bool:
        return -a
    if isinstance(a, timedelta):
        return -a
    raise EvalError(f"cannot negate {type_name(a)}")


def get_member(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return None


def get_index(obj: Any, idx: Any) -> Any:
    if isinstance(obj, tuple) and isinstance(idx, Decimal) and type(idx) is not bool:
        if idx != idx.to_integral_value():
            return None
        i = int(idx)
        return obj[i] if -len(obj) <= i < len(obj) else None
    if isinstance(obj, Mapping) and isinstance(idx, str):
        return obj.get(idx)
    return None


def to_json(v: Any) -> Any:
    """A value as JSON-ready data (decimals as canonical strings), for explain and obligations."""
    kind = type(v)
    if kind is str or kind is bool or kind is int or v is None:  # the common leaves, without ABC checks
        return v
    if kind is dict:
        return {k: to_json(x) for k, x in sorted(v.items())}
    if isinstance(v, Decimal):
        return canonical_decimal(v)
    if isinstance(v, timedelta):
        return f"{int(v.total_seconds())}s"
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, tuple):
        return [to_json(x) for x in v]
    if isinstance(v, frozenset):
        return sorted((to_json(x) for x in v), key=lambda x: (str(type(x)), str(x)))
    if isinstance(v, Mapping):
        return {k: to_json(x) for k, x in sorted(v.items())}
    return v


def canonical_decimal(d: Decimal) -> str:
    """`120.50` → `120.5`, `1E+2` → `100`, `-0` → `0`: no exponent, no trailing zeros."""
    if d.is_zero():
        return "0"
    text = format(d.normalize(DECIMAL_CONTEXT), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
