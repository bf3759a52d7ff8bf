"""Check: AST modules → typed IR, with every problem as a diagnostic.

Names resolve innermost first: quantifier variables, then the package's `let`s, then the
request/fact roots (`action`, `agent`, `actors`, `rationale`, `context`, `confidence`, `mode`,
`risk`, `now`) and `data` (the bundle's data files). Paths are typed against
`types.REQUEST_SCHEMA` and `types.FACT_SCHEMA`; an unknown member is an error with a
did-you-mean. Expressions that fail to check become None and never reach the engine.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import re2

from gavel.lang import ir
from gavel.lang import syntax as ast
from gavel.lang.diagnostics import Diagnostic, DiagnosticSink, Fix, did_you_mean, segment_fix
from gavel.lang.functions import SIGNATURES
from gavel.lang.source import Span
from gavel.lang.types import (
    BOOL,
    DATA_ROOT,
    DURATION,
    DYNAMIC,
    FACT_SCHEMA,
    KNOWN_VALUES,
    NULL,
    NUMBER,
    OBJECT,
    ORDERED,
    REQUEST_SCHEMA,
    RISK_SCHEMA,
    ROOTS,
    STRING,
    TIME,
    WEEKDAYS,
    Type,
    compatible,
    list_of,
    set_of,
    unify,
)

REASON_CODE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")
ROUTE_KEYS = ("role", "approvals", "timeout", "on_timeout", "escalate_to")
ON_TIMEOUT = ("deny", "allow", "escalate")
DEFAULT_TIMEOUT = timedelta(hours=24)
_CONDITION_KINDS = ("bool", "dynamic", "null")


@dataclass
class _Package:
    name: str
    lets: dict[str, ast.LetDecl] = field(default_factory=dict)
    scopes: list[ast.ScopeDecl] = field(default_factory=list)
    defaults: list[ast.DefaultDecl] = field(default_factory=list)
    rules: dict[str, ast.RuleDecl] = field(default_factory=dict)
    risks: list[ast.RiskDecl] = field(default_factory=list)
    tests: list[ast.TestDecl] = field(default_factory=list)
    duplicates: list[ast.RuleDecl] = field(default_factory=list)


@dataclass
class _Scope:
    """Where an expression is checked: its package, bound variables, and what it may read."""

    package: _Package
    vars: dict[str, ir.Var] = field(default_factory=dict)
    forbid_risk: str | None = None  # why `risk.*` may not be read here
    next_slot: list[int] = field(default_factory=lambda: [0])

    def bind(self, name: str, t: Type, span: Span) -> tuple[_Scope, ir.Var]:
        slot = self.next_slot[0]
        self.next_slot[0] += 1
        var = ir.Var(name, slot, t, span)
        return _Scope(self.package, {**self.vars, name: var}, self.forbid_risk, self.next_slot), var


class Checker:
    def __init__(self, modules: Sequence[ast.Module], data_schema: dict | None = None):
        self.modules = modules
        self.data_schema = data_schema  # the bundle's data file names; None when they are not known
        self.sink = DiagnosticSink()
        self.packages: dict[str, _Package] = {}
        self.let_ir: dict[tuple[str, str], ir.IExpr | None] = {}
        self.let_uses_risk: dict[tuple[str, str], bool] = {}
        self.let_in_progress: set[tuple[str, str]] = set()
        self.let_refs: dict[tuple[str, str], int] = defaultdict(int)

    # ------------------------------------------------------------ entry

    def run(self) -> ir.ProgramIR:
        self._collect()
        packages = []
        tests = []
        for name in sorted(self.packages):
            pkg = self.packages[name]
            packages.append(self._package(pkg))
            tests.extend(self._test(pkg, t) for t in pkg.tests)
        for pkg in self.packages.values():
            for let_name, decl in pkg.lets.items():
                if self.let_refs[(pkg.name, let_name)] == 0:
                    self.sink.warning("W301", f"unused let `{let_name}`", decl.span,
                                      "remove it, or use it in a rule",
                                      (Fix(decl.span, "", f"remove the unused let `{let_name}`"),))
        return ir.ProgramIR(tuple(packages), tuple(t for t in tests if t is not None))

    def _collect(self) -> None:
        for module in self.modules:
            pkg = self.packages.setdefault(module.package.name, _Package(module.package.name))
            for item in module.items:
                if isinstance(item, ast.LetDecl):
                    if item.name in pkg.lets:
                        self._dup("let", item.name, item.span, pkg.lets[item.name].span)
                    elif item.name in ROOTS or item.name in SIGNATURES:
                        self.sink.error("E203", f"let `{item.name}` hides a built-in name", item.span,
                                        "choose another name")
                    else:
                        pkg.lets[item.name] = item
                elif isinstance(item, ast.ScopeDecl):
                    pkg.scopes.append(item)
                elif isinstance(item, ast.DefaultDecl):
                    pkg.defaults.append(item)
                elif isinstance(item, ast.RuleDecl):
                    if item.name in pkg.rules:
                        self._dup("rule", item.name, item.span, pkg.rules[item.name].span)
                        pkg.duplicates.append(item)
                    else:
                        pkg.rules[item.name] = item
                elif isinstance(item, ast.RiskDecl):
                    pkg.risks.append(item)
                elif isinstance(item, ast.TestDecl):
                    pkg.tests.append(item)

    def _dup(self, what: str, name: str, span: Span, first: Span) -> None:
        self.sink.error("E201", f"duplicate {what} `{name}` in this package", span,
                        f"first defined at {first}")

    # ------------------------------------------------------------ declarations

    def _package(self, pkg: _Package) -> ir.PackageIR:
        for extra in pkg.scopes[1:]:
            self.sink.error("E202", f"package `{pkg.name}` has more than one scope", extra.span,
                            f"first scope at {pkg.scopes[0].span}; join the conditions in one block")
        for extra in pkg.defaults[1:]:
            self.sink.error("E202", f"package `{pkg.name}` has more than one default", extra.span,
                            f"first default at {pkg.defaults[0].span}")
        scope_ctx = _Scope(pkg, forbid_risk="a scope is evaluated before risk")
        scope = self._conditions(pkg.scopes[0].conditions, scope_ctx) if pkg.scopes else ()
        lets = tuple((n, self._let(pkg, n)) for n in sorted(pkg.lets))
        risks = tuple(self._risk(pkg, i, r) for i, r in enumerate(pkg.risks))
        rules = tuple(self._rule(pkg, r) for r in pkg.rules.values())
        for duplicate in pkg.duplicates:  # reported already; check its body so its errors show too
            self._rule(pkg, duplicate)
        default = self._default(pkg, pkg.defaults[0]) if pkg.defaults else None
        return ir.PackageIR(
            name=pkg.name,
            scope=scope,
            lets=tuple((n, v) for n, v in lets if v is not None),
            rules=tuple(r for r in rules if r is not None),
            default=default,
            risks=tuple(r for r in risks if r is not None),
        )

    def _let(self, pkg: _Package, name: str) -> ir.IExpr | None:
        key = (pkg.name, name)
        if key in self.let_ir:
            return self.let_ir[key]
        decl = pkg.lets[name]
        self.let_in_progress.add(key)
        value = self._expr(decl.value, _Scope(pkg))
        self.let_in_progress.discard(key)
        self.let_ir[key] = value
        self.let_uses_risk[key] = value is not None and _reads_risk(value, self.let_uses_risk)
        return value

    def _conditions(self, exprs: Sequence[ast.Expr], ctx: _Scope) -> tuple[ir.IExpr, ...]:
        out = []
        for e in exprs:
            value = self._expr(e, ctx)
            if value is None:
                continue
            if value.type.kind not in _CONDITION_KINDS:
                self.sink.error("E110", f"a condition must be a boolean, found {value.type}", e.span)
                continue
            out.append(value)
        return tuple(out)

    def _risk(self, pkg: _Package, index: int, decl: ast.RiskDecl) -> ir.RiskIR | None:
        ctx = _Scope(pkg, forbid_risk="risk rules compute the score")
        conds = self._conditions(decl.conditions, ctx)
        if not -100 <= decl.weight <= 100:
            self.sink.error("E208", "a risk weight must be between -100 and 100", decl.span)
        return ir.RiskIR(f"{pkg.name}.risk#{index + 1}", pkg.name, decl.weight, decl.factor, conds, decl.span)

    def _reason(self, reason: str | None, fallback: str, span: Span) -> str:
        if reason is None:
            return fallback
        if not REASON_CODE.fullmatch(reason):
            self.sink.error("E207", f"reason code `{reason}` is not of the form `family.name`", span,
                            "use lower-case words joined by dots, e.g. \"refund.too_large\"")
        return reason

    def _rule(self, pkg: _Package, decl: ast.RuleDecl) -> ir.RuleIR | None:
        ctx = _Scope(pkg)
        when = self._conditions(decl.when, ctx)
        unless = self._conditions(decl.unless, _Scope(pkg))
        route = self._route(decl.effect, decl.route, decl.span)
        obligations = None
        if decl.obligations is not None:
            obligations = self._expr(decl.obligations, _Scope(pkg))
        reason = self._reason(decl.reason, f"{pkg.name}.{decl.name}", decl.span)
        return ir.RuleIR(
            id=f"{pkg.name}.{decl.name}", package=pkg.name, name=decl.name, effect=decl.effect,
            reason_code=reason, message=decl.message, priority=decl.priority or 0,
            when=when, unless=unless, route=route,
            obligations=obligations if isinstance(obligations, ir.MakeObject) else None,
            span=decl.span,
        )

    def _default(self, pkg: _Package, decl: ast.DefaultDecl) -> ir.RuleIR:
        route = self._route(decl.effect, decl.route, decl.span)
        reason = self._reason(decl.reason, f"{pkg.name}.default", decl.span)
        return ir.RuleIR(
            id=f"{pkg.name}.default", package=pkg.name, name="default", effect=decl.effect,
            reason_code=reason, message=None, priority=0, when=(), unless=(), route=route,
            obligations=None, is_default=True, span=decl.span,
        )

    def _route(self, effect: str, route: ast.Route | None, span: Span) -> ir.RouteIR | None:
        if route is None:
            if effect == "require_approval":
                route_text = 'route { role: "…", approvals: 1, timeout: 24h, on_timeout: deny }'
                end = Span(span.file, span.end_line, span.end_column, span.end_line, span.end_column)
                self.sink.error("E204", "`require_approval` needs a `route`", span, f"add {route_text}",
                                (Fix(end, f"\n  {route_text}", "add a route"),))
            return None
        if effect != "require_approval":
            self.sink.error("E205", f"a `route` only applies to require_approval, not {effect}", route.span)
            return None
        values: dict[str, ast.RouteEntry] = {}
        for entry in route.entries:
            if entry.key not in ROUTE_KEYS:
                hint = did_you_mean(entry.key, ROUTE_KEYS)
                self.sink.error("E206", f"unknown route field `{entry.key}`", entry.span,
                                f"did you mean `{hint}`?" if hint else f"fields: {', '.join(ROUTE_KEYS)}",
                                (Fix.replace(_start_of(entry.span, entry.key), hint),) if hint else ())
            elif entry.key in values:
                self.sink.error("E206", f"route field `{entry.key}` given twice", entry.span)
            else:
                values[entry.key] = entry

        def const(key: str, kind: str):
            entry = values.get(key)
            if entry is None:
                return None
            v = entry.value
            if isinstance(v, ast.Literal) and v.kind == kind:
                return v.value
            self.sink.error("E206", f"route field `{key}` must be a {kind} literal", entry.span)
            return None

        role = const("role", "string")
        if "role" not in values:
            self.sink.error("E206", "a route needs a `role`", route.span, 'e.g. role: "finance_manager"')
        approvals = const("approvals", "number")
        if approvals is not None and (approvals != int(approvals) or not 1 <= approvals <= 100):
            self.sink.error("E206", "`approvals` must be a whole number from 1 to 100", values["approvals"].span)
            approvals = None
        timeout = const("timeout", "duration")
        if timeout is not None and timeout <= timedelta(0):
            self.sink.error("E206", "`timeout` must be positive", values["timeout"].span)
        on_timeout = "deny"
        if "on_timeout" in values:
            v = values["on_timeout"].value
            word = v.id if isinstance(v, ast.Name) else v.value if isinstance(v, ast.Literal) else None
            if word not in ON_TIMEOUT:
                self.sink.error("E206", "`on_timeout` must be deny, allow or escalate", values["on_timeout"].span)
            else:
                on_timeout = word
        escalate_to = const("escalate_to", "string")
        if on_timeout == "escalate" and escalate_to is None:
            self.sink.error("E206", "`on_timeout: escalate` needs `escalate_to`", route.span)
        return ir.RouteIR(
            role=role or "",
            approvals=int(approvals) if approvals is not None else 1,
            timeout=timeout or DEFAULT_TIMEOUT,
            on_timeout=on_timeout,
            escalate_to=escalate_to,
        )

    # ------------------------------------------------------------ tests

    def _test(self, pkg: _Package, decl: ast.TestDecl) -> ir.TestIR | None:
        request = self._data(decl.input, REQUEST_SCHEMA, "input") if decl.input else {}
        facts = self._data(decl.facts, FACT_SCHEMA, "facts") if decl.facts else None
        if decl.expect is None:
            self.sink.error("E209", f"test `{decl.name}` has no `expect`", decl.span)
            return None
        if decl.now is not None:
            try:
                parse_time(decl.now)
            except ValueError:
                self.sink.error("E209", f"`now` must be an ISO-8601 time with a zone, found `{decl.now}`",
                                decl.span, 'e.g. now "2026-11-21T10:00:00Z"')
        return ir.TestIR(
            name=decl.name, input=request or {}, facts=facts, now=decl.now,
            expect_effect=decl.expect.effect, expect_reason=decl.expect.reason,
            expect_role=decl.expect.role, span=decl.span,
        )

    def _data(self, node: ast.Expr, schema, where: str, path: tuple[str, ...] = ()):
        """Turn literal test data into plain Python values, checking keys against the schema."""
        if isinstance(node, ast.Literal):
            if node.kind == "duration":
                self.sink.error("E209", "durations are not test data", node.span)
            return node.value
        if isinstance(node, ast.ListLit | ast.SetLit):
            return [self._data(i, None, where, path) for i in node.items]
        if isinstance(node, ast.ObjectLit):
            out = {}
            for entry in node.entries:
                sub = None
                if isinstance(schema, dict):
                    if entry.key not in schema:
                        hint = did_you_mean(entry.key, schema)
                        dotted = ".".join((*path, entry.key))
                        self.sink.error("E101", f"unknown {where} field `{dotted}`", entry.span,
                                        f"did you mean `{'.'.join((*path, hint))}`?" if hint else None)
                        continue
                    sub = schema[entry.key]
                out[entry.key] = self._data(entry.value, sub, where, (*path, entry.key))
            return out
        self.sink.error("E209", f"test {where} must be literal data", node.span)
        return None

    # ------------------------------------------------------------ expressions

    def _expr(self, e: ast.Expr, ctx: _Scope) -> ir.IExpr | None:
        method = getattr(self, f"_x_{type(e).__name__}")
        return method(e, ctx)

    def _x_Literal(self, e: ast.Literal, ctx: _Scope):
        t = {"number": NUMBER, "string": STRING, "bool": BOOL, "null": NULL, "duration": DURATION}[e.kind]
        return ir.Const(e.value, t, e.span)

    def _x_Name(self, e: ast.Name, ctx: _Scope):
        return self._path(e, (e.id,), e.span, ctx)

    def _x_Member(self, e: ast.Member, ctx: _Scope):
        chain = _static_chain(e)
        if chain is not None and chain[0] not in ctx.vars and chain[0] not in ctx.package.lets:
            return self._path(e, chain, e.span, ctx)
        obj = self._expr(e.obj, ctx)
        if obj is None:
            return None
        if obj.type.kind in ("dynamic", "object", "null"):
            return ir.GetMember(obj, e.name, DYNAMIC, e.span)
        self.sink.error("E102", f"{_a(obj.type)} has no member `{e.name}`", e.span)
        return None

    def _path(self, e: ast.Expr, chain: tuple[str, ...], span: Span, ctx: _Scope):
        head, rest = chain[0], chain[1:]
        if head in ctx.vars:
            value: ir.IExpr = ctx.vars[head]
            for name in rest:
                value = ir.GetMember(value, name, DYNAMIC, span)
            return value
        if head in ctx.package.lets:
            key = (ctx.package.name, head)
            self.let_refs[key] += 1
            if key in self.let_in_progress:
                self.sink.error("E105", f"let `{head}` refers to itself", span)
                return None
            value_ir = self._let(ctx.package, head)
            if value_ir is None:
                return None
            if ctx.forbid_risk and self.let_uses_risk.get(key):
                self.sink.error("E104", f"let `{head}` reads `risk`, which is not available here", span,
                                ctx.forbid_risk)
                return None
            value = ir.LetRef(ctx.package.name, head, value_ir.type, span)
            for name in rest:
                if value.type.kind not in ("dynamic", "object"):
                    self.sink.error("E102", f"{_a(value.type)} has no member `{name}`", span)
                    return None
                value = ir.GetMember(value, name, DYNAMIC, span)
            return value
        if head == "now":
            if rest:
                fixes = (Fix.replace(span, f"{rest[0]}(now)"),) \
                    if rest[0] in ("hour", "day_of_week", "date") and _spells(span, chain) else ()
                self.sink.error("E102", f"`now` is a time and has no member `{rest[0]}`", span,
                                "use hour(now), day_of_week(now) or date(now)", fixes)
                return None
            return ir.Now(TIME, span)
        if head == "risk":
            if ctx.forbid_risk:
                self.sink.error("E104", "`risk` is not available here", span, ctx.forbid_risk)
                return None
            if len(rest) != 1 or rest[0] not in RISK_SCHEMA:
                hint = did_you_mean(rest[0], RISK_SCHEMA) if rest else None
                self.sink.error("E101", f"unknown path `{'.'.join(chain)}`", span,
                                f"did you mean `risk.{hint}`?" if hint else "use risk.score or risk.tier",
                                segment_fix(span, chain, 1, hint) if hint else ())
                return None
            return ir.RiskRef(rest[0], RISK_SCHEMA[rest[0]], span)
        if head == DATA_ROOT:
            return self._data_path(chain, span)
        if head not in REQUEST_SCHEMA:
            names = [*ctx.vars, *ctx.package.lets, *ROOTS]
            hint = did_you_mean(head, names)
            self.sink.error("E101", f"unknown name `{head}`", span,
                            f"did you mean `{hint}`?" if hint else None,
                            segment_fix(span, chain, 0, hint) if hint else ())
            return None
        return self._schema_path(chain, span)

    def _schema_path(self, chain: tuple[str, ...], span: Span):
        request_node = REQUEST_SCHEMA.get(chain[0])
        fact_node = FACT_SCHEMA.get(chain[0])
        source = "request"
        if len(chain) == 1:
            t = request_node if isinstance(request_node, Type) else OBJECT
            return ir.InputPath("request", chain, t, span)
        if isinstance(request_node, dict) and chain[1] not in request_node and isinstance(fact_node, dict) \
                and chain[1] in fact_node:
            source, node = "fact", fact_node
        else:
            node = request_node
        for i, name in enumerate(chain[1:], 1):
            if isinstance(node, Type):
                if node.kind == "dynamic":
                    return ir.InputPath(source, chain, DYNAMIC, span)
                where = ".".join(chain[:i])
                self.sink.error("E102", f"`{where}` is {_a(node)} and has no member `{name}`", span)
                return None
            if name not in node:
                siblings = dict(node)
                if source == "request" and i == 1 and isinstance(fact_node, dict):
                    siblings.update(fact_node)
                hint = did_you_mean(name, siblings)
                where = ".".join(chain[: i + 1])
                self.sink.error("E101", f"unknown path `{where}`", span,
                                f"did you mean `{'.'.join((*chain[:i], hint))}`?" if hint else
                                f"`{'.'.join(chain[:i])}` has: {', '.join(sorted(siblings))}",
                                segment_fix(span, chain, i, hint) if hint else ())
                return None
            node = node[name]
        t = node if isinstance(node, Type) else OBJECT
        return ir.InputPath(source, chain, t, span)

    def _data_path(self, chain: tuple[str, ...], span: Span):
        """`data.<file>…`: dynamic below a file; the file names are checked when they are known."""
        node = self.data_schema
        if node is None:
            return ir.InputPath(DATA_ROOT, chain, DYNAMIC if len(chain) > 1 else OBJECT, span)
        for i, name in enumerate(chain[1:], 1):
            if isinstance(node, Type):
                return ir.InputPath(DATA_ROOT, chain, DYNAMIC, span)
            if name not in node:
                hint = did_you_mean(name, node)
                where = ".".join(chain[: i + 1])
                if hint:
                    help_ = f"did you mean `{'.'.join((*chain[:i], hint))}`?"
                elif node:
                    help_ = f"`{'.'.join(chain[:i])}` has: {', '.join(sorted(node))}"
                else:
                    help_ = "this bundle has no data files; `data/NAME.json` is read as `data.NAME`"
                self.sink.error("E101", f"unknown path `{where}`", span, help_,
                                segment_fix(span, chain, i, hint) if hint else ())
                return None
            node = node[name]
        return ir.InputPath(DATA_ROOT, chain, node if isinstance(node, Type) else OBJECT, span)

    def _x_Index(self, e: ast.Index, ctx: _Scope):
        obj, idx = self._expr(e.obj, ctx), self._expr(e.index, ctx)
        if obj is None or idx is None:
            return None
        kind = obj.type.kind
        if kind == "list":
            if idx.type.kind not in ("number", "dynamic"):
                self.sink.error("E102", f"a list index must be a number, found {idx.type}", e.index.span)
                return None
            return ir.GetIndex(obj, idx, obj.type.elem or DYNAMIC, e.span)
        if kind in ("dynamic", "object", "null"):
            return ir.GetIndex(obj, idx, DYNAMIC, e.span)
        self.sink.error("E102", f"{_a(obj.type)} cannot be indexed", e.span)
        return None

    def _x_Call(self, e: ast.Call, ctx: _Scope):
        sig = SIGNATURES.get(e.func)
        if sig is None:
            hint = did_you_mean(e.func, SIGNATURES)
            self.sink.error("E106", f"unknown function `{e.func}`", e.span,
                            f"did you mean `{hint}`?" if hint else None,
                            (Fix.replace(_start_of(e.span, e.func), hint),) if hint else ())
            return None
        args = [self._expr(a, ctx) for a in e.args]
        if any(a is None for a in args):
            return None
        result = sig.check([a.type for a in args])
        if isinstance(result, str):
            self.sink.error("E107", f"`{e.func}` {result}", e.span, f"usage: {sig.usage}")
            return None
        if e.func == "matches":
            pattern = args[1]
            if isinstance(pattern, ir.LetRef):  # a `let` that is a constant string is a constant
                pattern = self.let_ir.get((pattern.package, pattern.name)) or pattern
            if not isinstance(pattern, ir.Const):
                self.sink.error("E108", "the pattern of `matches` must be a constant string", e.args[1].span)
                return None
            try:
                re2.compile(pattern.value)
            except re2.error as exc:
                detail = exc.args[0] if exc.args else ""
                detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
                self.sink.error("E108", f"invalid regular expression: {detail}", e.args[1].span,
                                "patterns use RE2 syntax (no backreferences or look-around)")
                return None
        if e.func == "time" and isinstance(args[0], ir.Const):
            try:
                parse_time(args[0].value)
            except ValueError:
                self.sink.error("E108", f"`{args[0].value}` is not an ISO-8601 time with a zone", e.span)
                return None
        return ir.CallFn(e.func, tuple(args), result, e.span)

    def _x_Unary(self, e: ast.Unary, ctx: _Scope):
        operand = self._expr(e.operand, ctx)
        if operand is None:
            return None
        if e.op == "not":
            if operand.type.kind not in _CONDITION_KINDS:
                self.sink.error("E103", f"`not` needs a boolean, found {operand.type}", e.span)
                return None
            return ir.Not(operand, BOOL, e.span)
        if operand.type.kind not in ("number", "duration", "dynamic", "null"):
            self.sink.error("E103", f"cannot negate {_a(operand.type)}", e.span)
            return None
        return ir.Neg(operand, operand.type, e.span)

    def _x_Binary(self, e: ast.Binary, ctx: _Scope):
        left, right = self._expr(e.left, ctx), self._expr(e.right, ctx)
        if left is None or right is None:
            return None
        lt, rt = left.type, right.type
        if e.op in ("and", "or"):
            for side, t in ((e.left, lt), (e.right, rt)):
                if t.kind not in _CONDITION_KINDS:
                    self.sink.error("E103", f"`{e.op}` needs booleans, found {t}", side.span)
                    return None
            return ir.Logic(e.op, left, right, BOOL, e.span)
        if e.op in ("==", "!="):
            if not compatible(lt, rt):
                self.sink.error("E103", f"cannot compare {lt} with {rt}", e.span,
                                _compare_hint(lt, rt))
                return None
            self._known_values(left, right)
            return ir.Compare(e.op, left, right, BOOL, e.span)
        if e.op in ("<", "<=", ">", ">="):
            for t in (lt, rt):
                if t.kind not in ORDERED and t.kind not in ("dynamic", "null"):
                    self.sink.error("E103", f"`{e.op}` cannot order {_a(t)}", e.span)
                    return None
            if "null" in (lt.kind, rt.kind):
                self.sink.warning("W305", f"`{e.op}` with null is always false", e.span,
                                  "use `== null` to test for absence")
            elif lt.kind != rt.kind and "dynamic" not in (lt.kind, rt.kind):
                self.sink.error("E103", f"cannot compare {lt} with {rt}", e.span, _compare_hint(lt, rt))
                return None
            return ir.Compare(e.op, left, right, BOOL, e.span)
        if e.op in ("in", "not in"):
            if rt.kind not in ("list", "set", "dynamic", "object", "null"):
                hint = "use contains(text, part) for substrings" if rt.kind == "string" else None
                self.sink.error("E103", f"`{e.op}` needs a list or set on the right, found {rt}", e.span, hint)
                return None
            elem = rt.elem or DYNAMIC
            if not compatible(lt, elem):
                self.sink.error("E103", f"cannot look for {_a(lt)} in {_a(rt)}", e.span, _compare_hint(lt, elem))
                return None
            self._known_values(left, right)
            return ir.Compare(e.op, left, right, BOOL, e.span)
        return self._arith(e, left, right)

    def _arith(self, e: ast.Binary, left: ir.IExpr, right: ir.IExpr):
        lk, rk = left.type.kind, right.type.kind
        pair = {lk, rk}
        result: Type | None = None
        if pair <= {"number", "dynamic", "null"}:
            result = NUMBER if "number" in pair else DYNAMIC
        elif e.op in ("+", "-") and pair <= {"duration", "null"}:
            result = DURATION
        elif e.op == "+" and pair == {"time", "duration"} or e.op == "-" and lk == "time" and rk == "duration":
            result = TIME
        elif (e.op == "-" and lk == "time" and rk == "time") or (
                e.op in ("*", "/") and lk == "duration" and rk == "number"):
            result = DURATION
        elif "dynamic" in pair:
            result = DYNAMIC
        if result is None:
            self.sink.error("E103", f"`{e.op}` cannot combine {left.type} and {right.type}", e.span,
                            "arithmetic works on numbers, durations and times")
            return None
        return ir.Arith(e.op, left, right, result, e.span)

    def _x_Quantifier(self, e: ast.Quantifier, ctx: _Scope):
        coll = self._expr(e.collection, ctx)
        if coll is None:
            return None
        if coll.type.kind not in ("list", "set", "dynamic", "null"):
            self.sink.error("E103", f"`{e.kind}` needs a list or set, found {coll.type}", e.collection.span)
            return None
        if e.var in ctx.package.lets or e.var in ROOTS:
            self.sink.error("E203", f"variable `{e.var}` hides the name `{e.var}`", e.span, "choose another name")
            return None
        inner, var = ctx.bind(e.var, coll.type.elem or DYNAMIC, e.span)
        body = self._expr(e.body, inner)
        if body is None:
            return None
        if body.type.kind not in _CONDITION_KINDS:
            self.sink.error("E110", f"the body of `{e.kind}` must be a boolean, found {body.type}", e.body.span)
            return None
        return ir.Quant(e.kind, var.slot, coll, body, BOOL, e.span)

    def _x_SetLit(self, e: ast.SetLit, ctx: _Scope):
        items = [self._expr(i, ctx) for i in e.items]
        if any(i is None for i in items):
            return None
        elem = unify([i.type for i in items])
        if elem is None:
            self.sink.error("E109", "set elements must all have one type", e.span)
            return None
        if elem.kind not in ("number", "string", "bool", "duration", "dynamic"):
            self.sink.error("E109", f"sets hold numbers, strings, booleans or durations, not {elem}", e.span)
            return None
        return ir.MakeSet(tuple(items), set_of(elem), e.span)

    def _x_ListLit(self, e: ast.ListLit, ctx: _Scope):
        items = [self._expr(i, ctx) for i in e.items]
        if any(i is None for i in items):
            return None
        elem = unify([i.type for i in items]) or DYNAMIC
        return ir.MakeList(tuple(items), list_of(elem), e.span)

    def _x_ObjectLit(self, e: ast.ObjectLit, ctx: _Scope):
        values = [self._expr(en.value, ctx) for en in e.entries]
        if any(v is None for v in values):
            return None
        return ir.MakeObject(tuple(en.key for en in e.entries), tuple(values), OBJECT, e.span)

    def _known_values(self, left: ir.IExpr, right: ir.IExpr) -> None:
        for a, b in ((left, right), (right, left)):
            known = None
            if isinstance(a, ir.InputPath):
                known = KNOWN_VALUES.get(a.keys)
            elif isinstance(a, ir.RiskRef):
                known = KNOWN_VALUES.get(("risk", a.field))
            elif isinstance(a, ir.CallFn) and a.name == "day_of_week":
                known = WEEKDAYS
            if known is None:
                continue
            consts = [b] if isinstance(b, ir.Const) else list(b.items) if isinstance(b, ir.MakeSet) else []
            for c in consts:
                if isinstance(c, ir.Const) and isinstance(c.value, str) and c.value not in known:
                    hint = did_you_mean(c.value, known)
                    self.sink.warning("W306", f"`{c.value}` is never a value here", c.span,
                                      f"did you mean `{hint}`?" if hint else f"values: {', '.join(known)}",
                                      (Fix.replace(c.span, f'"{hint}"'),) if hint else ())


def _a(t: Type) -> str:
    text = str(t)
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


def _start_of(span: Span, word: str) -> Span:
    """The span of `word` written at the start of `span` (a call's name, a route field's key)."""
    return Span(span.file, span.line, span.column, span.line, span.column + len(word))


def _spells(span: Span, chain: tuple[str, ...]) -> bool:
    """Whether `span` holds exactly the dotted path, on one line (see `segment_fix`)."""
    return span.line == span.end_line and span.end_column - span.column == len(".".join(chain))


def _static_chain(e: ast.Expr) -> tuple[str, ...] | None:
    names: list[str] = []
    while isinstance(e, ast.Member):
        names.append(e.name)
        e = e.obj
    if not isinstance(e, ast.Name):
        return None
    return (e.id, *reversed(names))


def _compare_hint(a: Type, b: Type) -> str | None:
    kinds = {a.kind, b.kind}
    if kinds == {"string", "number"}:
        return 'numbers are written without quotes (500), strings with them ("500")'
    return None


def _reads_risk(e: ir.IExpr, let_uses_risk: dict) -> bool:
    if isinstance(e, ir.RiskRef):
        return True
    if isinstance(e, ir.LetRef):
        return let_uses_risk.get((e.package, e.name), False)
    return any(_reads_risk(c, let_uses_risk) for c in children(e))


def children(e: ir.IExpr) -> tuple[ir.IExpr, ...]:
    """The direct sub-expressions of an IR node."""
    if isinstance(e, ir.GetMember | ir.Not | ir.Neg):
        return (e.obj,) if isinstance(e, ir.GetMember) else (e.operand,)
    if isinstance(e, ir.GetIndex):
        return (e.obj, e.index)
    if isinstance(e, ir.CallFn):
        return e.args
    if isinstance(e, ir.Logic | ir.Compare | ir.Arith):
        return (e.left, e.right)
    if isinstance(e, ir.Quant):
        return (e.collection, e.body)
    if isinstance(e, ir.MakeList | ir.MakeSet):
        return e.items
    if isinstance(e, ir.MakeObject):
        return e.values
    return ()


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time that carries a zone (`Z` or an offset)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError("time without a zone")
    return value


def check_modules(modules: Sequence[ast.Module],
                  data_schema: dict | None = None) -> tuple[ir.ProgramIR, tuple[Diagnostic, ...]]:
    """Check the modules; `data_schema` (from `lang.data`) names the bundle's data files."""
    checker = Checker(modules, data_schema)
    program = checker.run()
    return program, tuple(checker.sink.items)
