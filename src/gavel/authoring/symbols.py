"""Symbols of a bundle and every place they are named: lets, rules (and package defaults),
quantifier variables.

A `let` is named by its declaration and by each use in its package (all files of the
package). A rule is named by its declaration and by the reason-code strings that mean it:
its own reason, and each test's `expect` of that code, since tests see the whole bundle. A
rule without an explicit reason has its id (`package.rule`) as its code.

The AST keeps the span of whole declarations only, so the spans of declared names and of
reason strings are found by lexing the declaration's text (`text.tokens`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from gavel.authoring.text import LineIndex, Token, contains, span_size, tokens
from gavel.lang import syntax as ast
from gavel.lang.source import Source, Span

SymbolKind = Literal["let", "rule", "default", "var"]
OccurrenceKind = Literal["declaration", "use", "reason"]
EFFECTS = frozenset(ast.EFFECTS)


@dataclass(frozen=True, slots=True)
class Symbol:
    kind: SymbolKind
    package: str
    name: str
    name_span: Span  # the declared name (for a default: the `default` keyword)
    decl_span: Span
    reason_code: str | None = None  # rules and defaults: what their decision carries
    explicit_reason: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.package}.{self.name}"


@dataclass(frozen=True, slots=True)
class Occurrence:
    symbol: Symbol
    span: Span
    kind: OccurrenceKind


@dataclass
class SymbolIndex:
    symbols: list[Symbol] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)
    lets: dict[str, dict[str, Symbol]] = field(default_factory=dict)  # package → name → its let
    rules: dict[str, dict[str, Symbol]] = field(default_factory=dict)  # package → name → its rule

    def at(self, file: str, line: int, column: int) -> list[Occurrence]:
        """The occurrences under a cursor, narrowest first (a reason string may name several
        rules: they come together)."""
        found = [o for o in self.occurrences if o.span.file == file and contains(o.span, line, column)]
        found.sort(key=lambda o: span_size(o.span))
        if not found:
            return []
        narrowest = found[0].span
        return [o for o in found if o.span == narrowest]

    def of(self, symbol: Symbol) -> list[Occurrence]:
        return [o for o in self.occurrences if o.symbol == symbol]

    def reason_codes(self) -> list[str]:
        return sorted({s.reason_code for s in self.symbols if s.reason_code})

    def in_file(self, file: str) -> Iterator[Symbol]:
        return (s for s in self.symbols if s.name_span.file == file)


def build_index(modules: Iterable[ast.Module], sources: Mapping[str, Source]) -> SymbolIndex:
    modules = list(modules)
    index = SymbolIndex()
    lines = {path: LineIndex(source.text) for path, source in sources.items()}
    by_reason: dict[str, list[Symbol]] = defaultdict(list)
    # Declarations first: a use may come before its let, in this file or another.
    for module in modules:
        text = lines.get(module.path)
        if text is None:
            continue
        pkg = module.package.name
        for item in module.items:
            symbol = _declare(item, pkg, text, module.path)
            if symbol is None:
                continue
            index.symbols.append(symbol)
            index.occurrences.append(Occurrence(symbol, symbol.name_span, "declaration"))
            table = index.lets if symbol.kind == "let" else index.rules if symbol.kind == "rule" else None
            if table is not None:
                table.setdefault(pkg, {}).setdefault(symbol.name, symbol)
            if symbol.reason_code:
                by_reason[symbol.reason_code].append(symbol)
                reason = _reason_span(item, text, module.path)
                if reason is not None:
                    index.occurrences.append(Occurrence(symbol, reason, "reason"))
    for module in modules:
        text = lines.get(module.path)
        if text is None:
            continue
        lets = index.lets.get(module.package.name, {})
        for item in module.items:
            if isinstance(item, ast.TestDecl):
                _expectation(item, text, module.path, by_reason, index)
            else:
                for expr in item_expressions(item):
                    _uses(expr, {}, lets, text, module.path, module.package.name, index)
    return index


def _declare(item: ast.Item, package: str, text: LineIndex, path: str) -> Symbol | None:
    if isinstance(item, ast.LetDecl | ast.RuleDecl):
        name = _name_after_keyword(item.span, text, path)
        if name is None:
            return None
        if isinstance(item, ast.LetDecl):
            return Symbol("let", package, item.name, name, item.span)
        return Symbol("rule", package, item.name, name, item.span, item.reason or f"{package}.{item.name}",
                      item.reason is not None)
    if isinstance(item, ast.DefaultDecl):
        keyword = Span(path, item.span.line, item.span.column, item.span.line, item.span.column + len("default"))
        return Symbol("default", package, "default", keyword, item.span, item.reason or f"{package}.default",
                      item.reason is not None)
    return None


def _decl_tokens(span: Span, text: LineIndex) -> list[Token]:
    start, end = text.span_offsets(span)
    return [t for t in tokens(text.text, start, end) if t.kind != "newline"]


def _name_after_keyword(span: Span, text: LineIndex, path: str) -> Span | None:
    """`let NAME`, `rule NAME`, `any NAME`: the span of the second token."""
    toks = _decl_tokens(span, text)
    if len(toks) < 2 or toks[1].kind != "name":
        return None
    return text.span(path, toks[1].start, toks[1].end)


def _reason_span(item: ast.Item, text: LineIndex, path: str) -> Span | None:
    """The reason string after the effect of a rule or default, if it is written."""
    if not isinstance(item, ast.RuleDecl | ast.DefaultDecl) or item.reason is None:
        return None
    return _string_after_effect(_decl_tokens(item.span, text), text, path)


def _string_after_effect(toks: list[Token], text: LineIndex, path: str) -> Span | None:
    for i, tok in enumerate(toks[:-1]):
        if tok.kind == "name" and tok.text in EFFECTS:
            nxt = toks[i + 1]
            if nxt.kind == "string" and nxt.closed:
                return text.span(path, nxt.start + 1, nxt.end - 1)  # inside the quotes
            return None
    return None


def _expectation(test: ast.TestDecl, text: LineIndex, path: str, by_reason: Mapping[str, list[Symbol]],
                 index: SymbolIndex) -> None:
    expect = test.expect
    if expect is None or expect.reason is None:
        return
    span = _string_after_effect(_decl_tokens(expect.span, text), text, path)
    if span is None:
        return
    for symbol in by_reason.get(expect.reason, ()):
        index.occurrences.append(Occurrence(symbol, span, "reason"))


def item_expressions(item: ast.Item) -> Iterator[ast.Expr]:
    if isinstance(item, ast.LetDecl):
        yield item.value
    elif isinstance(item, ast.ScopeDecl | ast.RiskDecl):
        yield from item.conditions
    elif isinstance(item, ast.RuleDecl):
        yield from item.when
        yield from item.unless
        if item.obligations is not None:
            yield item.obligations
        if item.route is not None:
            yield from (e.value for e in item.route.entries)
    elif isinstance(item, ast.DefaultDecl) and item.route is not None:
        yield from (e.value for e in item.route.entries)


def _uses(e: object, bound: dict[str, Symbol], lets: Mapping[str, Symbol], text: LineIndex, path: str,
          package: str, index: SymbolIndex) -> None:
    """Record each name that means a let or a bound variable. Walks any node generically, so
    expression nodes added to the language later are searched too."""
    if isinstance(e, ast.Name):
        symbol = bound.get(e.id) or lets.get(e.id)
        if symbol is not None:
            index.occurrences.append(Occurrence(symbol, e.span, "use"))
        return
    if isinstance(e, ast.Quantifier):
        _uses(e.collection, bound, lets, text, path, package, index)
        name = _name_after_keyword(e.span, text, path)
        if name is None:
            _uses(e.body, bound, lets, text, path, package, index)
            return
        var = Symbol("var", package, e.var, name, e.span)
        index.symbols.append(var)
        index.occurrences.append(Occurrence(var, name, "declaration"))
        _uses(e.body, {**bound, e.var: var}, lets, text, path, package, index)
        return
    for child in children(e):
        _uses(child, bound, lets, text, path, package, index)


def children(node: object) -> Iterator[object]:
    for name in getattr(node, "__dataclass_fields__", {}):
        if name == "span":
            continue
        value = getattr(node, name)
        for child in value if isinstance(value, tuple) else (value,):
            if hasattr(child, "__dataclass_fields__"):
                yield child
