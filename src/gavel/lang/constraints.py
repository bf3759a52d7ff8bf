"""Constraints a condition puts on one input path: a set of values or a numeric interval.

Shared by the decision tree (branch nodes) and the analysis pass (unreachable and shadowed
rules), so both read conditions the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gavel.lang import ir


@dataclass(frozen=True, slots=True)
class Interval:
    low: Decimal | None = None
    low_closed: bool = False
    high: Decimal | None = None
    high_closed: bool = False

    def meet(self, other: Interval) -> Interval:
        low, low_closed = self.low, self.low_closed
        if other.low is not None and (low is None or other.low > low or (other.low == low and not other.low_closed)):
            low, low_closed = other.low, other.low_closed
        high, high_closed = self.high, self.high_closed
        if other.high is not None and (high is None or other.high < high
                                       or (other.high == high and not other.high_closed)):
            high, high_closed = other.high, other.high_closed
        return Interval(low, low_closed, high, high_closed)

    def is_empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (self.low == self.high and not (self.low_closed and self.high_closed))

    def contains_point(self, v: Decimal) -> bool:
        if self.low is not None and (v < self.low or (v == self.low and not self.low_closed)):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and not self.high_closed)))

    def within(self, other: Interval) -> bool:
        """Whether every point of self lies in other."""
        return self.meet(other) == self


def value_key(v: Any) -> Any:
    """A dict key with the language's equality: booleans never collide with 0 and 1."""
    return ("bool", v) if type(v) is bool else v


PathKey = tuple[str, ...]  # (source, *keys)


@dataclass(frozen=True, slots=True)
class IndexTest:
    path: PathKey
    kind: str  # "eq" | "range"
    values: frozenset | None = None
    interval: Interval | None = None

    def merge(self, other: IndexTest) -> IndexTest:
        if self.kind == "eq":
            return IndexTest(self.path, "eq", values=self.values & other.values)
        return IndexTest(self.path, "range", interval=self.interval.meet(other.interval))

    def is_empty(self) -> bool:
        return not self.values if self.kind == "eq" else self.interval.is_empty()


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def index_test(cond: ir.IExpr) -> IndexTest | None:
    """The constraint a conjunct amounts to, if it is a plain test of one path against constants."""
    if not isinstance(cond, ir.Compare):
        return None
    left, right, op = cond.left, cond.right, cond.op
    if isinstance(left, ir.Const) and isinstance(right, ir.InputPath) and op in _FLIP:
        left, right, op = right, left, _FLIP[op]
    if not isinstance(left, ir.InputPath) or not isinstance(right, ir.Const):
        return None
    path = (left.source, *left.keys)
    value = right.value
    if op == "==" and _scalar(value):
        return IndexTest(path, "eq", values=frozenset((value_key(value),)))
    if op == "in" and isinstance(value, frozenset | tuple) and all(_scalar(v) or v is None for v in value):
        return IndexTest(path, "eq", values=frozenset(value_key(v) for v in value if v is not None))
    if op in ("<", "<=", ">", ">=") and left.type.kind == "number" and isinstance(value, Decimal):
        if op in ("<", "<="):
            return IndexTest(path, "range", interval=Interval(high=value, high_closed=op == "<="))
        return IndexTest(path, "range", interval=Interval(low=value, low_closed=op == ">="))
    return None


def _scalar(v: Any) -> bool:
    return isinstance(v, str | Decimal | bool)


def constraints_of(conjuncts: tuple[ir.IExpr, ...]) -> dict[tuple[PathKey, str], IndexTest]:
    """All index tests of a conjunction, merged per (path, kind)."""
    out: dict[tuple[PathKey, str], IndexTest] = {}
    for c in conjuncts:
        t = index_test(c)
        if t is None:
            continue
        key = (t.path, t.kind)
        out[key] = out[key].merge(t) if key in out else t
    return out
