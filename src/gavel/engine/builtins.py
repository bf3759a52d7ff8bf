"""Implementations of the built-in functions (signatures: `gavel.lang.functions`).

Null in, null out; predicates given null answer false (LANGUAGE.md §Absence). Regular
expressions are RE2 (linear time, no backtracking blow-ups).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import re2

from gavel.lang.check import parse_time
from gavel.lang.types import WEEKDAYS
from gavel.lang.values import DECIMAL_CONTEXT, EvalError, member, order, to_number, type_name


def _len(x: Any) -> Decimal | None:
    if x is None:
        return None
    if isinstance(x, str | tuple | frozenset | Mapping):
        return Decimal(len(x))
    raise EvalError(f"len() of {type_name(x)}")


def _count(x: Any) -> Decimal | None:
    if x is None:
        return None
    if isinstance(x, tuple | frozenset):
        return Decimal(len(x))
    raise EvalError(f"count() of {type_name(x)}")


def _str_fn(fn):
    def apply(x: Any) -> Any:
        if x is None:
            return None
        if not isinstance(x, str):
            raise EvalError(f"expected a string, found {type_name(x)}")
        return fn(x)

    return apply


def _predicate(fn):
    def apply(x: Any, y: Any) -> bool:
        if not isinstance(x, str) or not isinstance(y, str):
            return False
        return fn(x, y)

    return apply


def _contains(coll: Any, item: Any) -> bool:
    if coll is None or item is None:
        return False
    if isinstance(coll, str):
        return isinstance(item, str) and item in coll
    return member(item, coll)


@lru_cache(maxsize=512)
def _regex(pattern: str):
    return re2.compile(pattern)


def _matches(text: str, pattern: str) -> bool:
    return _regex(pattern).search(text) is not None


@lru_cache(maxsize=512)
def _glob_regex(pattern: str):
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re2.escape(ch))
    options = re2.Options()
    options.dot_nl = True  # `*` is any run of characters, newlines included
    return re2.compile("".join(out), options)


def _glob(text: str, pattern: str) -> bool:
    return _glob_regex(pattern).fullmatch(text) is not None


def _numbers(coll: Any, key: Any = None) -> list[Decimal] | None:
    if coll is None:
        return None
    if not isinstance(coll, tuple | frozenset):
        raise EvalError(f"expected a list or set, found {type_name(coll)}")
    out = []
    for item in coll:
        if key is not None:
            item = item.get(key) if isinstance(item, Mapping) else None
        if item is None:
            continue
        if not isinstance(item, Decimal) or type(item) is bool:
            raise EvalError(f"expected numbers, found {type_name(item)}")
        out.append(item)
    return out


def _sum(coll: Any, key: Any = None) -> Decimal | None:
    nums = _numbers(coll, key)
    if nums is None:
        return None
    total = Decimal(0)
    for n in nums:
        total = DECIMAL_CONTEXT.add(total, n)
    return total


def _extreme(pick_max: bool):
    def apply(*args: Any) -> Any:
        items = args
        if len(args) > 1 and any(a is None for a in args):
            return None
        if len(args) == 1:
            if args[0] is None:
                return None
            if not isinstance(args[0], tuple | frozenset):
                raise EvalError(f"expected a list or set, found {type_name(args[0])}")
            items = tuple(args[0])
        values = [v for v in items if v is not None]
        if not values:
            return None
        best = values[0]
        for v in values[1:]:
            if order(">" if pick_max else "<", v, best):
                best = v
        return best

    return apply


def _time_fn(fn):
    def apply(t: Any) -> Any:
        if t is None:
            return None
        if not isinstance(t, datetime):
            raise EvalError(f"expected a time, found {type_name(t)}")
        return fn(t.astimezone(UTC))

    return apply


def _time(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise EvalError(f"expected an ISO-8601 string, found {type_name(text)}")
    try:
        return parse_time(text)
    except ValueError:
        raise EvalError(f"`{text}` is not an ISO-8601 time with a zone") from None


def make_duration_since(now: datetime):
    def duration_since(t: Any) -> timedelta | None:
        if isinstance(t, str):
            t = _time(t)
        if t is None:
            return None
        if not isinstance(t, datetime):
            raise EvalError(f"expected a time, found {type_name(t)}")
        return now - t

    return duration_since


def _number(x: Any) -> Decimal | None:
    if x is None or (isinstance(x, Decimal) and type(x) is not bool):
        return x
    if isinstance(x, str):
        return to_number(x)
    raise EvalError(f"number() of {type_name(x)}")


FUNCTIONS = {
    "len": _len,
    "count": _count,
    "lower": _str_fn(str.lower),
    "upper": _str_fn(str.upper),
    "startswith": _predicate(str.startswith),
    "endswith": _predicate(str.endswith),
    "contains": _contains,
    "matches": _predicate(_matches),
    "glob": _predicate(_glob),
    "sum": _sum,
    "min": _extreme(False),
    "max": _extreme(True),
    "day_of_week": _time_fn(lambda t: WEEKDAYS[t.weekday()]),
    "hour": _time_fn(lambda t: Decimal(t.hour)),
    "date": _time_fn(lambda t: t.date().isoformat()),
    "time": _time,
    "number": _number,
    # duration_since needs the decision's `now`; the compiler binds it per activation
    "duration_since": None,
}
