"""Built-in functions: their static signatures (the checker's view).

Implementations live in `gavel.engine.builtins`; both tables are keyed by the same names and a
test keeps them in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gavel.lang.types import BOOL, DURATION, DYNAMIC, NUMBER, STRING, TIME, Type

# A signature check returns the result type, or an error message.
Check = Callable[[list[Type]], "Type | str"]


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    usage: str
    check: Check


def _is(t: Type, *kinds: str) -> bool:
    return t.kind in kinds or t.kind in ("dynamic", "null")


def _fixed(params: tuple[tuple[str, ...], ...], result: Type) -> Check:
    def check(args: list[Type]) -> Type | str:
        if len(args) != len(params):
            return f"takes {len(params)} argument{'s' if len(params) != 1 else ''}, found {len(args)}"
        for i, (arg, kinds) in enumerate(zip(args, params, strict=True), 1):
            if not _is(arg, *kinds):
                return f"argument {i} must be {' or '.join(kinds)}, found {arg}"
        return result

    return check


def _contains(args: list[Type]) -> Type | str:
    if len(args) != 2:
        return f"takes 2 arguments, found {len(args)}"
    if not _is(args[0], "string", "list", "set", "object"):
        return f"argument 1 must be string, list or set, found {args[0]}"
    if args[0].kind == "string" and not _is(args[1], "string"):
        return f"argument 2 must be string when argument 1 is a string, found {args[1]}"
    return BOOL


def _sum(args: list[Type]) -> Type | str:
    if len(args) not in (1, 2):
        return f"takes 1 or 2 arguments, found {len(args)}"
    if not _is(args[0], "list", "set"):
        return f"argument 1 must be a list or set, found {args[0]}"
    if len(args) == 2 and not _is(args[1], "string"):
        return f"argument 2 (a member name) must be string, found {args[1]}"
    elem = args[0].elem
    if len(args) == 1 and elem is not None and not _is(elem, "number"):
        return f"needs a collection of numbers, found {args[0]}"
    return NUMBER


def _min_max(args: list[Type]) -> Type | str:
    if len(args) == 1:
        if not _is(args[0], "list", "set"):
            return f"with one argument it must be a list or set, found {args[0]}"
        elem = args[0].elem or DYNAMIC
        return elem if elem.kind != "null" else DYNAMIC
    if len(args) < 1:
        return "takes at least 1 argument"
    kinds = {a.kind for a in args if a.kind not in ("dynamic", "null")}
    if len(kinds) > 1 or (kinds and not kinds <= {"number", "string", "duration", "time"}):
        return "arguments must all be numbers, strings, durations or times"
    return Type(kinds.pop()) if kinds else DYNAMIC


def _len(args: list[Type]) -> Type | str:
    if len(args) != 1:
        return f"takes 1 argument, found {len(args)}"
    if not _is(args[0], "string", "list", "set", "object"):
        return f"argument must be string, list, set or object, found {args[0]}"
    return NUMBER


def _duration_since(args: list[Type]) -> Type | str:
    if len(args) != 1:
        return f"takes 1 argument, found {len(args)}"
    if not _is(args[0], "time", "string"):
        return f"argument must be a time or an ISO-8601 string, found {args[0]}"
    return DURATION


SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature("len", "len(string | list | set | object) -> number", _len),
        Signature("count", "count(list | set) -> number", _fixed((("list", "set"),), NUMBER)),
        Signature("lower", "lower(string) -> string", _fixed((("string",),), STRING)),
        Signature("upper", "upper(string) -> string", _fixed((("string",),), STRING)),
        Signature("startswith", "startswith(string, prefix) -> bool", _fixed((("string",), ("string",)), BOOL)),
        Signature("endswith", "endswith(string, suffix) -> bool", _fixed((("string",), ("string",)), BOOL)),
        Signature("contains", "contains(string | list | set, item) -> bool", _contains),
        Signature("matches", "matches(string, regex) -> bool", _fixed((("string",), ("string",)), BOOL)),
        Signature("glob", "glob(string, pattern) -> bool", _fixed((("string",), ("string",)), BOOL)),
        Signature("sum", "sum(list [, member]) -> number", _sum),
        Signature("min", "min(list) or min(a, b, ...)", _min_max),
        Signature("max", "max(list) or max(a, b, ...)", _min_max),
        Signature("day_of_week", "day_of_week(time) -> string", _fixed((("time",),), STRING)),
        Signature("hour", "hour(time) -> number", _fixed((("time",),), NUMBER)),
        Signature("date", "date(time) -> string", _fixed((("time",),), STRING)),
        Signature("time", "time(iso_string) -> time", _fixed((("string",),), TIME)),
        Signature("number", "number(decimal_string | number) -> number", _fixed((("string", "number"),), NUMBER)),
        Signature("duration_since", "duration_since(time | iso_string) -> duration", _duration_since),
    )
}
