"""Lower: checked IR → the IR the engine compiles.

- constant sub-expressions are folded (`let large = small * 20` becomes a number);
- lets whose value is a constant or a plain path are inlined, so the decision tree sees
  `agent.id in {"rogue-bot", …}` rather than a reference;
- `data.*` paths become constants when the bundle's data files are given;
- each rule's specificity is computed: the distinct request paths its `when` conditions and its
  package's `scope` read, through lets and quantifier collections (LANGUAGE.md §Combining 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gavel.lang import ir
from gavel.lang.check import children
from gavel.lang.data import read_data
from gavel.lang.diagnostics import Diagnostic, DiagnosticSink
from gavel.lang.types import DATA_ROOT, counts_for_specificity
from gavel.lang.values import EvalError, arith, equal, get_index, get_member, member, negate, order

_INLINE = (ir.Const, ir.InputPath, ir.Now, ir.RiskRef)


class _Lowering:
    def __init__(self, package: ir.PackageIR, sink: DiagnosticSink, data: Mapping[str, Any] | None = None):
        self.package = package
        self.sink = sink
        self.data = data
        self.raw_lets = dict(package.lets)
        self.lets: dict[str, ir.IExpr] = {}
        self.let_paths: dict[str, frozenset[str]] = {}

    def let(self, name: str) -> ir.IExpr:
        if name not in self.lets:
            self.lets[name] = self.expr(self.raw_lets[name])
        return self.lets[name]

    def expr(self, e: ir.IExpr) -> ir.IExpr:
        if isinstance(e, ir.LetRef) and e.package == self.package.name:
            value = self.let(e.name)
            return value if isinstance(value, _INLINE) else e
        if isinstance(e, ir.InputPath) and e.source == DATA_ROOT and self.data is not None:
            return ir.Const(read_data(self.data, e.keys[1:]), e.type, e.span)
        kids = children(e)
        if not kids:
            return e
        lowered = tuple(self.expr(k) for k in kids)
        e = _with_children(e, lowered)
        if all(isinstance(k, ir.Const) for k in lowered) and not isinstance(e, ir.Quant | ir.CallFn):
            try:
                return ir.Const(_fold(e, [k.value for k in lowered]), e.type, e.span)
            except EvalError as exc:
                self.sink.error("E111", f"this constant expression fails: {exc}", e.span)
        return e

    def paths(self, e: ir.IExpr) -> frozenset[str]:
        if isinstance(e, ir.InputPath):
            if e.source == "request" and counts_for_specificity(e.keys):
                return frozenset((e.dotted,))
            return frozenset()
        if isinstance(e, ir.LetRef):
            if e.name not in self.let_paths:
                self.let_paths[e.name] = frozenset()  # guards against cycles (already reported)
                self.let_paths[e.name] = self.paths(self.let(e.name))
            return self.let_paths[e.name]
        out: frozenset[str] = frozenset()
        for k in children(e):
            out |= self.paths(k)
        return out

    def run(self) -> ir.PackageIR:
        pkg = self.package
        scope = tuple(self.expr(c) for c in pkg.scope)
        scope_paths = frozenset().union(*(self.paths(c) for c in pkg.scope))
        rules = []
        for rule in pkg.rules:
            paths = scope_paths.union(*(self.paths(c) for c in rule.when))
            rules.append(replace(
                rule,
                when=tuple(self.expr(c) for c in rule.when),
                unless=tuple(self.expr(c) for c in rule.unless),
                obligations=self.expr(rule.obligations) if rule.obligations else None,
                specificity=len(paths),
                request_paths=tuple(sorted(paths)),
            ))
        default = pkg.default
        if default is not None:
            default = replace(default, specificity=len(scope_paths), request_paths=tuple(sorted(scope_paths)))
        risks = tuple(replace(r, when=tuple(self.expr(c) for c in r.when)) for r in pkg.risks)
        lets = tuple((name, self.let(name)) for name, _ in pkg.lets)
        return ir.PackageIR(pkg.name, scope, lets, tuple(rules), default, risks, tuple(sorted(scope_paths)))


def _with_children(e: ir.IExpr, kids: tuple[ir.IExpr, ...]) -> ir.IExpr:
    if isinstance(e, ir.GetMember):
        return replace(e, obj=kids[0])
    if isinstance(e, ir.Not | ir.Neg):
        return replace(e, operand=kids[0])
    if isinstance(e, ir.GetIndex):
        return replace(e, obj=kids[0], index=kids[1])
    if isinstance(e, ir.CallFn):
        return replace(e, args=kids)
    if isinstance(e, ir.Logic | ir.Compare | ir.Arith):
        return replace(e, left=kids[0], right=kids[1])
    if isinstance(e, ir.Quant):
        return replace(e, collection=kids[0], body=kids[1])
    if isinstance(e, ir.MakeList | ir.MakeSet):
        return replace(e, items=kids)
    if isinstance(e, ir.MakeObject):
        return replace(e, values=kids)
    return e


def _fold(e: ir.IExpr, vals: list):
    if isinstance(e, ir.MakeSet):
        return frozenset(vals)
    if isinstance(e, ir.MakeList):
        return tuple(vals)
    if isinstance(e, ir.MakeObject):
        return dict(zip(e.keys, vals, strict=True))
    if isinstance(e, ir.Not):
        return vals[0] is not True
    if isinstance(e, ir.Neg):
        return negate(vals[0])
    if isinstance(e, ir.Logic):
        a, b = vals[0] is True, vals[1] is True
        return (a and b) if e.op == "and" else (a or b)
    if isinstance(e, ir.Arith):
        return arith(e.op, vals[0], vals[1])
    if isinstance(e, ir.Compare):
        a, b = vals
        if e.op == "==":
            return equal(a, b)
        if e.op == "!=":
            return not equal(a, b)
        if e.op == "in":
            return member(a, b)
        if e.op == "not in":
            return not member(a, b)
        return order(e.op, a, b)
    if isinstance(e, ir.GetMember):
        return get_member(vals[0], e.name)
    if isinstance(e, ir.GetIndex):
        return get_index(vals[0], vals[1])
    raise EvalError("cannot fold")  # pragma: no cover


def lower_program(program: ir.ProgramIR,
                  data: Mapping[str, Any] | None = None) -> tuple[ir.ProgramIR, tuple[Diagnostic, ...]]:
    """Lower every package; `data` (the bundle's data file values) folds `data.*` into constants."""
    sink = DiagnosticSink()
    packages = tuple(_Lowering(p, sink, data).run() for p in program.packages)
    return ir.ProgramIR(packages, program.tests), tuple(sink.items)
