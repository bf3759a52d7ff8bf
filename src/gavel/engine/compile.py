"""Compile IR expressions to Python closures `fn(activation) -> value`.

Closures are built once per bundle; a decision only calls them. Paths are read and converted
once per decision (memoised in the activation); lets are computed at most once per decision.
Conditions hold only when they evaluate to exactly `true`.

Errors: `and` is false if either side is false even when the other side failed; `or` is true if
either side is true even when the other failed; otherwise a failure propagates as `EvalError`.
This makes a rule's verdict independent of the order conditions are evaluated in — which is
what lets the decision tree skip conditions without changing any answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from gavel.engine.activation import MISSING, Activation
from gavel.engine.builtins import FUNCTIONS, make_duration_since
from gavel.lang import ir
from gavel.lang.values import (
    EvalError,
    arith,
    equal,
    from_data,
    get_index,
    get_member,
    member,
    negate,
    order,
    to_number,
    type_name,
)

Fn = Callable[[Activation], Any]


def _convert_for(t) -> Callable[[Any], Any]:
    kind = t.kind
    if kind == "number":
        return to_number
    if kind == "string":
        def as_string(v: Any) -> Any:
            if v is None or isinstance(v, str):
                return v
            raise EvalError(f"expected a string, found {type_name(from_data(v))}")
        return as_string
    if kind == "bool":
        def as_bool(v: Any) -> Any:
            if v is None or isinstance(v, bool):
                return v
            raise EvalError(f"expected a bool, found {type_name(from_data(v))}")
        return as_bool
    if kind == "set":
        def as_set(v: Any) -> Any:
            if v is None:
                return None
            if isinstance(v, list | tuple | set | frozenset):
                try:
                    return frozenset(from_data(x) for x in v)
                except TypeError:  # a list or object inside: not a set of scalars
                    raise EvalError("expected a list of strings, found nested data") from None
            raise EvalError(f"expected a list, found {type_name(from_data(v))}")
        return as_set
    return from_data


def path_reader(source: str, keys: tuple[str, ...], t) -> Fn:
    """A memoised reader of one request or fact path."""
    if source == "data":  # lowering folds `data.*` into constants; unfolded, there is nothing to read
        def unavailable(act: Activation) -> Any:
            raise EvalError(f"`{'.'.join(keys)}` needs the bundle's data files, which were not compiled in")
        return unavailable
    cache_key = (source, *keys)
    convert = _convert_for(t)
    from_request = source == "request"

    plain_string = t.kind == "string"

    def read(act: Activation) -> Any:
        cache = act.cache
        v = cache.get(cache_key, MISSING)
        if v is MISSING:
            v = act.request if from_request else act.facts
            for k in keys:
                if type(v) is dict or isinstance(v, Mapping):  # the common case, without the slower ABC check
                    v = v.get(k)
                else:
                    v = None
                    break
            if not (plain_string and (v is None or type(v) is str)):
                v = convert(v)
            cache[cache_key] = v
        return v

    return read


class Compiler:
    def __init__(self, lets: Mapping[tuple[str, str], ir.IExpr]):
        self.let_exprs = lets
        self.let_fns: dict[tuple[str, str], Fn] = {}

    def condition_list(self, conds: tuple[ir.IExpr, ...]) -> tuple[Fn, ...]:
        return tuple(self.expr(c) for c in conds)

    def expr(self, e: ir.IExpr) -> Fn:
        return getattr(self, f"_c_{type(e).__name__}")(e)

    def _c_Const(self, e: ir.Const) -> Fn:
        value = e.value
        return lambda act: value

    def _c_InputPath(self, e: ir.InputPath) -> Fn:
        return path_reader(e.source, e.keys, e.type)

    def _c_Now(self, e: ir.Now) -> Fn:
        return lambda act: act.now

    def _c_RiskRef(self, e: ir.RiskRef) -> Fn:
        if e.field == "score":
            return lambda act: act.risk_score
        return lambda act: act.risk_tier

    def _c_LetRef(self, e: ir.LetRef) -> Fn:
        key = (e.package, e.name)
        cache_key = ("let", *key)
        lets = self.let_fns

        def read(act: Activation) -> Any:
            v = act.cache.get(cache_key, MISSING)
            if v is MISSING:
                v = lets[key](act)
                act.cache[cache_key] = v
            return v

        if key not in lets:
            lets[key] = lambda act: None  # placeholder while compiling (cycles are rejected earlier)
            lets[key] = self.expr(self.let_exprs[key])
        return read

    def _c_Var(self, e: ir.Var) -> Fn:
        slot = e.slot
        return lambda act: act.vars.get(slot)

    def _c_GetMember(self, e: ir.GetMember) -> Fn:
        obj, name = self.expr(e.obj), e.name
        return lambda act: get_member(obj(act), name)

    def _c_GetIndex(self, e: ir.GetIndex) -> Fn:
        obj, idx = self.expr(e.obj), self.expr(e.index)
        return lambda act: get_index(obj(act), idx(act))

    def _c_CallFn(self, e: ir.CallFn) -> Fn:
        args = tuple(self.expr(a) for a in e.args)
        if e.name == "duration_since":
            (arg,) = args
            return lambda act: make_duration_since(act.now)(arg(act))
        fn = FUNCTIONS[e.name]
        if len(args) == 1:
            (a0,) = args
            return lambda act: fn(a0(act))
        if len(args) == 2:
            a0, a1 = args
            return lambda act: fn(a0(act), a1(act))
        return lambda act: fn(*(a(act) for a in args))

    def _c_Not(self, e: ir.Not) -> Fn:
        operand = self.expr(e.operand)
        return lambda act: operand(act) is not True

    def _c_Neg(self, e: ir.Neg) -> Fn:
        operand = self.expr(e.operand)
        return lambda act: negate(operand(act))

    def _c_Logic(self, e: ir.Logic) -> Fn:
        left, right = self.expr(e.left), self.expr(e.right)
        if e.op == "and":
            def both(act: Activation) -> bool:
                try:
                    if left(act) is not True:
                        return False
                except EvalError:
                    if right(act) is not True:
                        return False
                    raise
                return right(act) is True
            return both

        def either(act: Activation) -> bool:
            try:
                if left(act) is True:
                    return True
            except EvalError:
                if right(act) is True:
                    return True
                raise
            return right(act) is True
        return either

    def _c_Compare(self, e: ir.Compare) -> Fn:
        op = e.op
        left, right = self.expr(e.left), self.expr(e.right)
        const = e.right.value if isinstance(e.right, ir.Const) else MISSING
        if op in ("==", "!="):
            if isinstance(const, str) and e.left.type.kind == "string":  # the common case
                if op == "==":
                    return lambda act: left(act) == const
                return lambda act: left(act) != const
            if op == "==":
                return lambda act: equal(left(act), right(act))
            return lambda act: not equal(left(act), right(act))
        if op in ("in", "not in"):
            if isinstance(const, frozenset) and e.left.type.kind == "string" and all(
                    isinstance(x, str) for x in const):
                strings = const
                if op == "in":
                    return lambda act: left(act) in strings
                return lambda act: left(act) not in strings
            if op == "in":
                return lambda act: member(left(act), right(act))
            return lambda act: not member(left(act), right(act))
        if isinstance(const, Decimal) and e.left.type.kind == "number":
            bound = const
            if op == ">":
                return lambda act: (v := left(act)) is not None and v > bound
            if op == ">=":
                return lambda act: (v := left(act)) is not None and v >= bound
            if op == "<":
                return lambda act: (v := left(act)) is not None and v < bound
            return lambda act: (v := left(act)) is not None and v <= bound
        return lambda act: order(op, left(act), right(act))

    def _c_Arith(self, e: ir.Arith) -> Fn:
        op, left, right = e.op, self.expr(e.left), self.expr(e.right)
        return lambda act: arith(op, left(act), right(act))

    def _c_Quant(self, e: ir.Quant) -> Fn:
        coll, body, slot = self.expr(e.collection), self.expr(e.body), e.slot
        want_any = e.kind == "any"

        def quantify(act: Activation) -> bool:
            items = coll(act)
            if items is None:  # a missing collection satisfies neither `any` nor `all` (fail closed)
                return False
            if isinstance(items, Mapping) or not isinstance(items, tuple | frozenset):
                raise EvalError(f"`{e.kind} … in` needs a list or set, found {type_name(items)} "
                                f"`{str(items)[:40]}`")
            failure: EvalError | None = None
            saved = act.vars.get(slot, MISSING)
            try:
                for item in items:
                    act.vars[slot] = item
                    try:
                        holds = body(act) is True
                    except EvalError as exc:
                        failure = failure or exc
                        continue
                    if holds == want_any:
                        return want_any
            finally:
                if saved is MISSING:
                    act.vars.pop(slot, None)
                else:
                    act.vars[slot] = saved
            if failure is not None:
                raise failure
            return not want_any

        return quantify

    def _c_MakeList(self, e: ir.MakeList) -> Fn:
        items = tuple(self.expr(i) for i in e.items)
        return lambda act: tuple(i(act) for i in items)

    def _c_MakeSet(self, e: ir.MakeSet) -> Fn:
        items = tuple(self.expr(i) for i in e.items)

        def make(act: Activation) -> frozenset:
            values = [i(act) for i in items]
            try:
                return frozenset(values)
            except TypeError:
                raise EvalError("set elements must be numbers, strings, booleans or durations") from None

        return make

    def _c_MakeObject(self, e: ir.MakeObject) -> Fn:
        keys, values = e.keys, tuple(self.expr(v) for v in e.values)
        return lambda act: {k: v(act) for k, v in zip(keys, values, strict=True)}


def conjunction(fns: tuple[Fn, ...]) -> Callable[[Activation], bool]:
    """All conditions hold; a false one wins over a failed one (see module docstring)."""
    if not fns:
        return lambda act: True
    if len(fns) == 1:
        (only,) = fns

        def single(act: Activation) -> bool:
            return only(act) is True
        return single

    def every(act: Activation) -> bool:
        failure: EvalError | None = None
        for fn in fns:
            try:
                if fn(act) is not True:
                    return False
            except EvalError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return True

    return every
