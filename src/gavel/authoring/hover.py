"""Hover: what the name or path under the cursor is (its type and where its value comes from),
what a built-in does, and what a rule or reason code stands for."""

from __future__ import annotations

from dataclasses import dataclass

from gavel.authoring.analysis import Analysis
from gavel.authoring.builtin_docs import builtin_doc
from gavel.authoring.paths import lookup
from gavel.authoring.symbols import Occurrence, Symbol, children, item_expressions
from gavel.authoring.text import contains
from gavel.lang import syntax as ast
from gavel.lang.fmt import format_expr
from gavel.lang.source import Span
from gavel.lang.types import Type

MAX_VALUE_TEXT = 160


@dataclass(frozen=True)
class HoverText:
    markdown: str
    span: Span


@dataclass(frozen=True)
class Spot:
    """The innermost path or call under a cursor, with the variables bound there."""

    node: ast.Expr
    span: Span  # the part of the node under the cursor: a path's last segment, a call's name
    chain: tuple[str, ...] | None  # a static path up to the cursor's segment
    variables: dict[str, Type]


def hover(analysis: Analysis, file: str, line: int, column: int) -> HoverText | None:
    found = analysis.index.at(file, line, column)
    if found:
        return _symbol_hover(analysis, found)
    spot = spot_at(analysis, file, line, column)
    if spot is None:
        return None
    if isinstance(spot.node, ast.Call):
        doc = builtin_doc(spot.node.func)
        return HoverText(doc, spot.span) if doc else None
    if spot.chain is None:
        return None
    info = lookup(spot.chain, package=analysis.package_of(file), let_types=analysis.let_types,
                  variables=spot.variables, data=analysis.data)
    if info is None:
        return None
    text = f"```rules\n{info.path}: {info.type}\n```\n\n{_origin(info.origin)}"
    if info.detail:
        text += f" — {info.detail}"
    return HoverText(text, spot.span)


def _origin(origin: str) -> str:
    return {"request": "request field", "fact": "fact (from the server)", "let": "let", "variable": "variable",
            "risk": "risk", "time": "time", "data": "data file"}.get(origin, origin)


def _symbol_hover(analysis: Analysis, found: list[Occurrence]) -> HoverText:
    first = found[0]
    if first.kind == "reason":
        code = found[0].symbol.reason_code
        givers = "\n".join(f"- {_describe(o.symbol)} at {o.symbol.decl_span}" for o in found)
        return HoverText(f"reason code `{code}`, given by:\n\n{givers}", first.span)
    symbol = first.symbol
    if symbol.kind == "let":
        t = analysis.let_types.get((symbol.package, symbol.name))
        decl = _let_decl(analysis, symbol)
        value = format_expr(decl.value) if decl is not None else "…"
        if len(value) > MAX_VALUE_TEXT:
            value = value[:MAX_VALUE_TEXT] + " …"
        typed = f": {t}" if t is not None else ""
        text = f"```rules\nlet {symbol.name}{typed} = {value}\n```\n\nlet of package `{symbol.package}`"
        return HoverText(text, first.span)
    if symbol.kind == "var":
        t = analysis.var_types.get((symbol.decl_span.file, symbol.decl_span.line, symbol.decl_span.column))
        return HoverText(f"```rules\n{symbol.name}: {t or 'dynamic'}\n```\n\nquantifier variable", first.span)
    own = _own_reason(analysis, symbol)
    expecting = sum(1 for o in analysis.index.of(symbol) if o.kind == "reason" and o.span != own)
    text = f"{_describe(symbol)}\n\nreason code `{symbol.reason_code}`; {expecting} test expectation" \
           f"{'' if expecting == 1 else 's'} name it"
    return HoverText(text, first.span)


def _describe(symbol: Symbol) -> str:
    if symbol.kind == "default":
        return f"default of package `{symbol.package}`"
    return f"rule `{symbol.qualified}`"


def _own_reason(analysis: Analysis, symbol: Symbol) -> Span | None:
    for o in analysis.index.of(symbol):
        inside = o.span.file == symbol.decl_span.file and contains(symbol.decl_span, o.span.line, o.span.column)
        if o.kind == "reason" and inside:
            return o.span
    return None


def _let_decl(analysis: Analysis, symbol: Symbol) -> ast.LetDecl | None:
    module = analysis.module(symbol.decl_span.file)
    if module is None:
        return None
    return next((i for i in module.items if isinstance(i, ast.LetDecl) and i.span == symbol.decl_span), None)


def spot_at(analysis: Analysis, file: str, line: int, column: int) -> Spot | None:
    module = analysis.module(file)
    if module is None:
        return None
    for item in module.items:
        if not contains(item.span, line, column):
            continue
        for expr in item_expressions(item):
            spot = _descend(analysis, expr, line, column, {})
            if spot is not None:
                return spot
    return None


def _descend(analysis: Analysis, e: object, line: int, column: int, variables: dict[str, Type]) -> Spot | None:
    span = getattr(e, "span", None)
    if not isinstance(span, Span) or not contains(span, line, column):
        return None
    if isinstance(e, ast.Quantifier):
        found = _descend(analysis, e.collection, line, column, variables)
        if found is not None:
            return found
        elem = analysis.var_types.get((span.file, span.line, span.column))
        inner = {**variables, e.var: elem} if elem is not None else {k: v for k, v in variables.items() if k != e.var}
        return _descend(analysis, e.body, line, column, inner)
    if isinstance(e, ast.Member):
        segment = Span(span.file, span.end_line, span.end_column - len(e.name), span.end_line, span.end_column)
        if contains(segment, line, column):
            return Spot(e, segment, _chain(e), variables)
    if isinstance(e, ast.Name):
        return Spot(e, span, (e.id,), variables)
    if isinstance(e, ast.Call):
        name = Span(span.file, span.line, span.column, span.line, span.column + len(e.func))
        if contains(name, line, column):
            return Spot(e, name, None, variables)
    for child in children(e):
        found = _descend(analysis, child, line, column, variables)
        if found is not None:
            return found
    return None


def _chain(e: ast.Expr) -> tuple[str, ...] | None:
    names: list[str] = []
    while isinstance(e, ast.Member):
        names.append(e.name)
        e = e.obj
    if not isinstance(e, ast.Name):
        return None
    return (e.id, *reversed(names))
