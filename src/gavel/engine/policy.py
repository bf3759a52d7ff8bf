"""A compiled policy: the lowered program, its closures and its decision trees. Pure data."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gavel.engine.compile import Compiler, conjunction
from gavel.engine.decision import Match, Route
from gavel.engine.tree import Leaf, Node, Ranges, Switch, build_tree
from gavel.lang import ir
from gavel.lang.check import children
from gavel.lang.source import Source

Check = Callable[..., bool]


@dataclass(frozen=True)
class CompiledRule:
    ir: ir.RuleIR
    conjuncts: tuple[ir.IExpr, ...]  # the package scope, then the rule's `when`
    check_all: Check
    unless: Check | None
    route: Route | None
    location: str
    obligations: Callable[..., dict] | None = None
    match: Match | None = None  # what the decision lists when the rule matches (static)


@dataclass(frozen=True)
class CompiledRisk:
    ir: ir.RiskIR
    conjuncts: tuple[ir.IExpr, ...]
    check_all: Check
    location: str


@dataclass(frozen=True)
class CompiledPolicy:
    bundle_hash: str
    sources: Mapping[str, Source]
    program: ir.ProgramIR
    rules: tuple[CompiledRule, ...]
    rule_tree: Node | None
    risks: tuple[CompiledRisk, ...]
    risk_tree: Node | None
    defaults: tuple[CompiledRule, ...]  # package defaults; `default_tree` indexes their scopes
    default_tree: Node | None = field(repr=False)
    compiler: Compiler = field(repr=False)

    @cached_property
    def risk_order(self) -> dict[str, int]:
        """Risk rule id → position in the bundle (factors are listed in source order)."""
        return {r.ir.id: i for i, r in enumerate(self.risks)}

    @property
    def tests(self) -> tuple[ir.TestIR, ...]:
        return self.program.tests

    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.ir.id for r in self.rules)


def bundle_hash(sources: Mapping[str, str]) -> str:
    """`sha256:` + hex SHA-256 of the canonical JSON list of [path, sha256(content)], by path.

    The paths are bundle names: `.rules` files and data files (`data/vendors.json`) alike, so
    a bundle without data files hashes as it always did.
    """
    entries = [[path, hashlib.sha256(sources[path].encode("utf-8")).hexdigest()] for path in sorted(sources)]
    doc = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode("utf-8")).hexdigest()


def _path_types(conjunct_lists) -> dict:
    types: dict = {}

    def visit(e: ir.IExpr) -> None:
        if isinstance(e, ir.InputPath):
            types[(e.source, *e.keys)] = e.type
        for c in children(e):
            visit(c)

    for conjuncts in conjunct_lists:
        for c in conjuncts:
            visit(c)
    return types


def _arm(tree: Node | None, compiled_fns: list[tuple]) -> None:
    """Give every leaf entry the closures of the conjuncts the branches above it did not decide."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if isinstance(node, Leaf):
            for cand in node.entries:
                fns = compiled_fns[cand.rule]
                cand.checks = tuple(fns[i] for i in cand.residual)
        elif isinstance(node, Switch):
            stack.append(node.rest)
            stack.extend(node.cases.values())
        elif isinstance(node, Ranges):
            stack.append(node.rest)
            stack.extend(node.segments)


def compile_policy(program: ir.ProgramIR, sources: Mapping[str, Source], hash_: str,
                   names: Mapping[str, str] | None = None) -> CompiledPolicy:
    """Compile a lowered program; `names` maps source paths to bundle names for locations."""
    names = names or {}

    def where(span) -> str:
        return f"{names.get(span.file, span.file)}:{span.line}"

    lets = {(p.name, n): v for p in program.packages for n, v in p.lets}
    compiler = Compiler(lets)
    rules: list[CompiledRule] = []
    rule_fns: list[tuple] = []
    risks: list[CompiledRisk] = []
    risk_fns: list[tuple] = []
    defaults = []
    default_fns: list[tuple] = []
    for pkg in program.packages:
        scope_fns = compiler.condition_list(pkg.scope)
        for rule in pkg.rules:
            conjuncts = (*pkg.scope, *rule.when)
            fns = (*scope_fns, *compiler.condition_list(rule.when))
            rule_fns.append(fns)
            rules.append(CompiledRule(
                ir=rule, conjuncts=conjuncts, check_all=conjunction(fns),
                unless=conjunction(compiler.condition_list(rule.unless)) if rule.unless else None,
                route=_route(rule.route), location=where(rule.span),
                obligations=compiler.expr(rule.obligations) if rule.obligations else None,
                match=_match(rule, where(rule.span)),
            ))
        for risk in pkg.risks:
            conjuncts = (*pkg.scope, *risk.when)
            fns = (*scope_fns, *compiler.condition_list(risk.when))
            risk_fns.append(fns)
            risks.append(CompiledRisk(risk, conjuncts, conjunction(fns), where(risk.span)))
        if pkg.default is not None:
            d = pkg.default
            defaults.append(CompiledRule(d, tuple(pkg.scope), conjunction(scope_fns), None, _route(d.route),
                                         where(d.span), match=_match(d, where(d.span))))
            default_fns.append(scope_fns)
    trees = []
    for items, fns in ((rules, rule_fns), (risks, risk_fns), (defaults, default_fns)):
        tree = build_tree([r.conjuncts for r in items], _path_types(r.conjuncts for r in items))
        _arm(tree, fns)
        trees.append(tree)
    return CompiledPolicy(
        bundle_hash=hash_, sources=sources, program=program,
        rules=tuple(rules), rule_tree=trees[0], risks=tuple(risks), risk_tree=trees[1],
        defaults=tuple(defaults), default_tree=trees[2], compiler=compiler,
    )


def _match(r: ir.RuleIR, location: str) -> Match:
    return Match(rule=r.id, package=r.package, effect=r.effect, reason_code=r.reason_code,
                 specificity=r.specificity, priority=r.priority, paths=r.request_paths, location=location,
                 is_default=r.is_default)


def _route(route: ir.RouteIR | None) -> Route | None:
    if route is None:
        return None
    return Route(route.role, route.approvals, route.timeout, route.on_timeout, route.escalate_to)
