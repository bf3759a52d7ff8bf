"""The canonical layout of `.rules` files (`gavel fmt`).

`format_source` parses and reprints a file; `format_module` prints an AST. The output reparses
to an equal AST (`parse(fmt(x)) == parse(x)`), formatting is idempotent, and no comment is
ever dropped.

Layout:
- `package` first, then a blank line, then the items in their original order. Items are
  separated by one blank line, except that consecutive `let`s and consecutive `risk`s form a
  group without blank lines (an author's blank line inside such a group is kept, as one).
- Two-space indentation; no alignment padding (`let small = 500`); no blank lines inside
  `{ }` blocks. An expression stays on one line, except that a statement longer than 80
  columns whose expression is an `and`/`or` chain puts each further operand on its own
  line, indented once more and starting with the operator.
- A rule prints one clause per line: `rule name [priority N]`, then indented: the effect and
  reason, `message "…"`, `when …`, `unless …`, `route { … }`, `with { … }`. `default` prints
  like a rule (its `route` on its own indented line).
- `when`, `unless`, `scope` (and a risk's `when`) with one condition print it inline (in
  parentheses if it starts with `{`, which would otherwise open a block); with several, a
  `{ }` block with one condition per line. Route entries: always one per line.
- A test prints `input`, `now`, `facts`, `expect` in that order, one per line. The objects of
  `input`, `facts`, `with` and a `let` whose value is an object (and objects nested in them)
  print inline as `{ a: 1, b: "x" }`
  when their line fits in 80 columns and no comment lies inside them, otherwise one entry per
  line without commas. Every other object, set and list prints inline: `{"a", "b"}`, `[1, 2]`.
- Strings are re-escaped: `\\\\ \\" \\n \\t`; other control, format (bidi), surrogate and line
  separator characters as `\\uXXXX` (lower-case hex); everything else as itself.
- Numbers print their exact decimal value in positional notation (`format(d, "f")`, so
  `1E+2` prints `100` and `120.00` keeps its zeros); a negative number prints `-5`.
- Durations print with the largest unit that divides them exactly, preferring
  d > h > m > s > ms (`24h` prints `1d`, `90m` prints `90m`); zero prints `0s`.
- Object keys print bare when they are identifiers and not keywords, quoted otherwise.
- Parentheses only where precedence needs them; loosest first: `or` < `and` < `not` <
  comparisons (non-associative) < `+ -` < `* /` < unary `-` < postfix. Arithmetic is
  left-associative (`a - (b - c)`), and a quantifier is parenthesised whenever it is the
  operand of an operator (its body extends as far right as possible).

Comments (their trailing whitespace removed):
- A comment on its own line stays before the statement (item, clause, condition, route entry,
  test clause, object entry) that follows it, at that statement's indentation; one after the
  last statement of a block stays before the block's `}`, and one after the last item stays at
  the end of the file. Blank lines between top-level comments and items are kept (as one).
- A trailing comment stays at the end of its statement's last printed line; one after a `{`
  stays after the `{`.
- A comment inside something printed on one line (an expression, a one-condition block, an
  inline object) moves to its own line before that statement.
Clause keywords (`when`, the effect, `message`, `now`…) carry no AST node of their own, so
comments are placed most precisely when the source text is given (`format_source`, or
`format_module(module, text=…)`); without it they may move to a neighbouring clause.

ASTs the grammar cannot spell (an empty set, `input {}`, unary minus applied to a number
literal, a keyword used as a name) raise `ValueError`; the parser never produces them.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from gavel.lang import syntax as ast
from gavel.lang.diagnostics import Diagnostic
from gavel.lang.parse import parse_source
from gavel.lang.source import Source, Span

WIDTH = 80
INDENT = "  "

KEYWORDS = frozenset(
    "package let scope default risk rule test when unless route with allow deny"
    " require_approval and or not in any all true false null now".split()
)
_NAME_KEYWORDS = frozenset(("now", "risk"))  # keywords the grammar also reads as names
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPED_CATEGORIES = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))
_DURATION_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000),
                   ("s", 1_000_000), ("ms", 1_000))

# Binding strength, loosest first.
_OR, _AND, _NOT, _CMP, _SUM, _PRODUCT, _NEG, _POSTFIX, _ATOM = range(1, 10)
_BINARY_LEVEL = {"or": _OR, "and": _AND, "+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT,
                 **{op: _CMP for op in ast.COMPARISON_OPS}}

Pos = tuple[int, int]  # (line, column) as in spans
Range = tuple[Pos, Pos]  # [start, end)


def format_source(source: Source) -> tuple[str | None, tuple[Diagnostic, ...]]:
    """Format one file: (text, diagnostics), or (None, the parse diagnostics)."""
    module, diagnostics = parse_source(source)
    if module is None:
        return None, diagnostics
    return format_module(module, text=source.text), diagnostics


def format_module(module: ast.Module, *, text: str | None = None) -> str:
    """Print `module` in the canonical layout; `text`, its source, places comments exactly."""
    return _Printer(module, text).module()


# ---------------------------------------------------------------- scalars


def format_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) <= 0xFFFF and unicodedata.category(ch) in _ESCAPED_CATEGORIES:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} has no literal")
    if value.is_zero():
        value = abs(value)
    return format(value, "f")


def format_duration(value: timedelta) -> str:
    micros = value // timedelta(microseconds=1)
    if micros < 0 or micros % 1000:
        raise ValueError(f"duration {value} is not a whole, non-negative number of milliseconds")
    if micros == 0:
        return "0s"
    for unit, size in _DURATION_UNITS:
        if micros % size == 0:
            return f"{micros // size}{unit}"
    raise AssertionError("unreachable: ms divides every whole number of milliseconds")


def format_key(key: str) -> str:
    return key if _IDENT.fullmatch(key) and key not in KEYWORDS else format_string(key)


def _name(name: str, what: str, allowed: frozenset[str] = frozenset()) -> str:
    if not _IDENT.fullmatch(name) or (name in KEYWORDS and name not in allowed):
        raise ValueError(f"{what} {name!r} cannot be written")
    return name


# ---------------------------------------------------------------- expressions


def format_expr(e: ast.Expr) -> str:
    """An expression on one line, with the parentheses precedence needs and no others."""
    return _expr(e, 0)


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Binary):
        return _BINARY_LEVEL[e.op]
    if isinstance(e, ast.Unary):
        return _NOT if e.op == "not" else _NEG
    if isinstance(e, ast.Quantifier):
        return _NOT
    if isinstance(e, ast.Literal) and e.kind == "number" and e.value < 0:
        return _NEG  # `-5` is `neg` applied to `5`, folded by the parser
    if isinstance(e, ast.Member | ast.Index):
        return _POSTFIX
    return _ATOM


def _operand(e: ast.Expr, level: int, parent: str | None = None) -> str:
    if isinstance(e, ast.Quantifier):  # its body would swallow whatever follows
        return f"({_bare(e)})"
    if parent == "or" and isinstance(e, ast.Binary) and e.op == "and":  # readers should not need precedence
        return f"({_bare(e)})"
    return _expr(e, level)


def _expr(e: ast.Expr, min_level: int) -> str:
    text = _bare(e)
    return f"({text})" if _level(e) < min_level else text


def _bare(e: ast.Expr) -> str:
    if isinstance(e, ast.Literal):
        return _literal(e)
    if isinstance(e, ast.Name):
        return _name(e.id, "name", _NAME_KEYWORDS)
    if isinstance(e, ast.Member):
        return f"{_operand(e.obj, _POSTFIX)}.{_name(e.name, 'member', KEYWORDS)}"
    if isinstance(e, ast.Index):
        return f"{_operand(e.obj, _POSTFIX)}[{_expr(e.index, 0)}]"
    if isinstance(e, ast.Call):
        return f"{_name(e.func, 'function')}({', '.join(_expr(a, 0) for a in e.args)})"
    if isinstance(e, ast.Unary):
        if e.op == "not":
            return f"not {_operand(e.operand, _NOT)}"
        if isinstance(e.operand, ast.Literal) and e.operand.kind == "number":
            raise ValueError("unary minus of a number literal cannot be written (it folds)")
        return f"-{_operand(e.operand, _NEG)}"
    if isinstance(e, ast.Binary):
        level = _BINARY_LEVEL[e.op]
        left_level, right_level = (level + 1, level + 1) if level == _CMP else (level, level + 1)
        return f"{_operand(e.left, left_level, e.op)} {e.op} {_operand(e.right, right_level, e.op)}"
    if isinstance(e, ast.Quantifier):
        var = _name(e.var, "variable")
        return f"{e.kind} {var} in {_operand(e.collection, _SUM)}: {_expr(e.body, 0)}"
    if isinstance(e, ast.SetLit):
        if not e.items:
            raise ValueError("an empty set cannot be written (`{}` is an empty object)")
        return "{" + ", ".join(_expr(i, 0) for i in e.items) + "}"
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(_expr(i, 0) for i in e.items) + "]"
    if isinstance(e, ast.ObjectLit):
        if not e.entries:
            return "{}"
        return "{ " + ", ".join(f"{format_key(x.key)}: {_expr(x.value, 0)}" for x in e.entries) + " }"
    raise TypeError(f"not an expression: {e!r}")


def _literal(e: ast.Literal) -> str:
    if e.kind == "number":
        return format_number(e.value)
    if e.kind == "string":
        return format_string(e.value)
    if e.kind == "bool":
        return "true" if e.value else "false"
    if e.kind == "null":
        return "null"
    if e.kind == "duration":
        return format_duration(e.value)
    raise TypeError(f"unknown literal kind {e.kind!r}")


def _condition(e: ast.Expr) -> str:
    """A condition written right after `when`/`unless`/`scope`, where `{` opens a block."""
    text = _expr(e, 0)
    return f"({text})" if text.startswith("{") else text


def _expr_lines(indent: int, prefix: str, e: ast.Expr, *, condition: bool = False) -> list[_Line]:
    """`prefix` and `e` on one line; if that passes the width and `e` is an `and`/`or` chain,
    one operand per line, continuation lines starting with the operator (a newline before
    `and`/`or` continues the expression everywhere, see `_Blocks` in parse.py)."""
    text = _condition(e) if condition else _expr(e, 0)
    if (len(INDENT * indent + prefix + text) <= WIDTH or text != _expr(e, 0)
            or not (isinstance(e, ast.Binary) and e.op in ast.LOGICAL_OPS)):
        return [_Line(indent, prefix + text)]
    rights: list[ast.Expr] = []
    left: ast.Expr = e
    while isinstance(left, ast.Binary) and left.op == e.op:
        rights.append(left.right)
        left = left.left
    level = _BINARY_LEVEL[e.op]
    lines = [_Line(indent, prefix + _operand(left, level, e.op))]
    lines += [_Line(indent + 1, f"{e.op} {_operand(r, level + 1, e.op)}") for r in reversed(rights)]
    return lines


# ---------------------------------------------------------------- source positions


def _start(span: Span) -> Pos:
    return (span.line, span.column)


def _end(span: Span) -> Pos:
    return (span.end_line, span.end_column)


def _range(span: Span) -> Range:
    return (_start(span), _end(span))


def _close(span: Span) -> Pos:
    """The position of the `}` that ends `span`."""
    return (span.end_line, span.end_column - 1)


def _cpos(c: ast.Comment) -> Pos:
    return _start(c.span)


@dataclass(frozen=True, slots=True)
class _Tok:
    text: str
    start: Pos
    end: Pos


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*|\S')
_OPEN, _CLOSE = frozenset("{(["), frozenset("})]")


class _Tokens:
    """A coarse re-scan of the source: enough to find clause keywords and braces, which
    the AST keeps no positions for."""

    def __init__(self, text: str):
        line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.toks: list[_Tok] = []
        for m in _TOKEN.finditer(text):
            if m.group().startswith("#"):
                continue
            line = bisect_right(line_starts, m.start())
            col = m.start() - line_starts[line - 1] + 1
            self.toks.append(_Tok(m.group(), (line, col), (line, col + len(m.group()))))
        self.starts = [t.start for t in self.toks]

    def within(self, span: Span) -> list[_Tok]:
        lo = bisect_left(self.starts, _start(span))
        hi = bisect_left(self.starts, _end(span))
        return self.toks[lo:hi]


def _clauses(toks: Sequence[_Tok], mark: Callable[[str, set[str]], str | None]) -> dict[str, list[_Tok]]:
    """Split `toks` into clauses at the depth-0 tokens `mark` names."""
    out: dict[str, list[_Tok]] = {}
    current: list[_Tok] | None = None
    depth = 0
    for tok in toks:
        name = mark(tok.text, set(out)) if depth == 0 else None
        if name is not None and name not in out:
            current = out[name] = []
        if current is not None:
            current.append(tok)
        if tok.text in _OPEN:
            depth += 1
        elif tok.text in _CLOSE:
            depth -= 1
    return out


def _tok_range(toks: Sequence[_Tok]) -> Range:
    while len(toks) > 1 and toks[-1].text == ",":
        toks = toks[:-1]
    return (toks[0].start, toks[-1].end)


def _tok_braces(toks: Sequence[_Tok]) -> tuple[Pos, Pos] | None:
    """`{`…`}` right after a clause keyword (a block of conditions)."""
    if len(toks) > 2 and toks[1].text == "{" and toks[-1].text == "}":
        return (toks[1].start, toks[-1].start)
    return None


# ---------------------------------------------------------------- output lines and comments


@dataclass(slots=True)
class _Line:
    indent: int
    text: str
    comment: str | None = None

    def render(self) -> str:
        pad = INDENT * self.indent
        if self.text and self.comment:
            return f"{pad}{self.text}  {self.comment}"
        if self.comment:
            return pad + self.comment
        return pad + self.text if self.text else ""


Emitted = tuple[list[_Line], list[ast.Comment]]  # lines, and comments to put before them


@dataclass(slots=True)
class _Child:
    """A statement in a container: where it was, and how to print it given its comments."""

    rng: Range | None
    indent: int
    emit: Callable[[list[ast.Comment]], Emitted]


@dataclass(slots=True)
class _Slots:
    header: list[ast.Comment] = field(default_factory=list)
    leading: dict[int, list[ast.Comment]] = field(default_factory=dict)
    inner: dict[int, list[ast.Comment]] = field(default_factory=dict)
    trailing: dict[int, list[ast.Comment]] = field(default_factory=dict)
    dangling: list[ast.Comment] = field(default_factory=list)


def _attach(ranges: Sequence[Range | None], comments: Sequence[ast.Comment],
            open_line: int | None = None) -> _Slots:
    """Give each comment to a statement: before it, inside it, after it on its last line,
    after a container's `{` (header), or after the last statement (dangling)."""
    slots = _Slots()
    known = sorted(((r, i) for i, r in enumerate(ranges) if r is not None), key=lambda ri: ri[0])
    ends = [r[1] for r, _ in known]
    for c in comments:
        p, line = _cpos(c), c.span.line
        k = bisect_right(ends, p)  # first statement ending after the comment
        prev = known[k - 1] if k > 0 else None
        if prev is not None and prev[0][1][0] == line and (k == len(known) or p < known[k][0][0]):
            slots.trailing.setdefault(prev[1], []).append(c)
        elif k == len(known):
            (slots.header if line == open_line and not known else slots.dangling).append(c)
        elif p < known[k][0][0]:
            if k == 0 and line == open_line:
                slots.header.append(c)
            else:
                slots.leading.setdefault(known[k][1], []).append(c)
        else:
            slots.inner.setdefault(known[k][1], []).append(c)
    return slots


def _comment_line(indent: int, c: ast.Comment) -> _Line:
    return _Line(indent, "", c.text.rstrip())


def _add_trailing(lines: list[_Line], c: ast.Comment, indent: int) -> None:
    if lines and lines[-1].text and lines[-1].comment is None:
        lines[-1].comment = c.text.rstrip()
    else:
        lines.append(_comment_line(indent, c))


def _assemble(children: Sequence[_Child], slots: _Slots) -> list[_Line]:
    out: list[_Line] = []
    for i, child in enumerate(children):
        lines, hoisted = child.emit(slots.inner.get(i, []))
        out.extend(_comment_line(child.indent, c) for c in slots.leading.get(i, []) + hoisted)
        out.extend(lines)
        for c in slots.trailing.get(i, []):
            _add_trailing(out, c, child.indent)
    return out


def _split(comments: Sequence[ast.Comment], pos: Pos | None) -> tuple[list, list]:
    """Comments before `pos`, and the rest."""
    if pos is None:
        return [], list(comments)
    return [c for c in comments if _cpos(c) < pos], [c for c in comments if _cpos(c) >= pos]


def _inline(indent: int, text: str) -> Callable[[list[ast.Comment]], Emitted]:
    """A statement printed on one line: every comment inside it moves before it."""
    return lambda inner: ([_Line(indent, text)], inner)


def _inline_expr(indent: int, prefix: str, e: ast.Expr) -> Callable[[list[ast.Comment]], Emitted]:
    """A statement ending in an expression: comments inside it move before it."""
    return lambda inner: (_expr_lines(indent, prefix, e), inner)


# ---------------------------------------------------------------- the printer


class _Printer:
    def __init__(self, module: ast.Module, text: str | None):
        self.m = module
        self.tokens = _Tokens(text) if text is not None else None
        self.comments = sorted(module.comments, key=_cpos)

    def _toks(self, span: Span) -> list[_Tok]:
        return self.tokens.within(span) if self.tokens is not None else []

    # ---- the file

    def module(self) -> str:
        nodes: list = [self.m.package, *self.m.items]
        ranges = [_range(n.span) for n in nodes]
        slots = _attach(ranges, self.comments)
        out: list[_Line] = []
        for i, node in enumerate(nodes):
            lines, hoisted = self._item(node, slots.inner.get(i, []))
            leading = slots.leading.get(i, [])
            if i > 0:
                prev = nodes[i - 1]
                first = leading[0].span.line if leading else ranges[i][0][0]
                grouped = type(prev) is type(node) and isinstance(node, ast.LetDecl | ast.RiskDecl)
                if not grouped or first - ranges[i - 1][1][0] > 1:
                    out.append(_Line(0, ""))
            for j, c in enumerate(leading):
                out.append(_comment_line(0, c))
                following = leading[j + 1].span.line if j + 1 < len(leading) else ranges[i][0][0]
                if following - c.span.line > 1:
                    out.append(_Line(0, ""))
            out.extend(_comment_line(0, c) for c in hoisted)
            out.extend(lines)
            for c in slots.trailing.get(i, []):
                _add_trailing(out, c, 0)
        last_line = ranges[-1][1][0]
        for c in slots.dangling:
            if c.span.line - last_line > 1:
                out.append(_Line(0, ""))
            out.append(_comment_line(0, c))
            last_line = c.span.line
        emitted = sum(1 for line in out if line.comment is not None)
        if emitted != len(self.comments):  # a bug, never the user's fault: refuse to lose text
            raise AssertionError(f"fmt placed {emitted} of {len(self.comments)} comments")
        return "\n".join(line.render() for line in out) + "\n"

    def _item(self, node, inner: list[ast.Comment]) -> Emitted:
        if isinstance(node, ast.PackageDecl):
            return [_Line(0, f"package {node.name}")], inner
        if isinstance(node, ast.LetDecl):
            prefix = f"let {_name(node.name, 'let')} = "
            if isinstance(node.value, ast.ObjectLit) and node.value.entries:  # a table: one entry per line
                return self._object(prefix, node.value, inner, 0)
            return _expr_lines(0, prefix, node.value), inner
        if isinstance(node, ast.ScopeDecl):
            toks = self._toks(node.span)
            return self._conditions("scope", node.conditions, inner, 0, _tok_braces(toks))
        if isinstance(node, ast.RiskDecl):
            return self._risk(node, inner)
        if isinstance(node, ast.DefaultDecl):
            return self._default(node, inner)
        if isinstance(node, ast.RuleDecl):
            return self._rule(node, inner)
        if isinstance(node, ast.TestDecl):
            return self._test(node, inner)
        raise TypeError(f"not an item: {node!r}")

    # ---- blocks

    def _block(self, head: str, children: Sequence[_Child], comments: Sequence[ast.Comment],
               indent: int, braces: tuple[Pos, Pos] | None) -> Emitted:
        """`head {`, the children one per line, `}`."""
        hoisted, inside = _split(comments, braces[0] if braces else None)
        slots = _attach([c.rng for c in children], inside, braces[0][0] if braces else None)
        lines = [_Line(indent, f"{head} {{" if head else "{")]
        for c in slots.header:
            _add_trailing(lines, c, indent + 1)
        lines += _assemble(children, slots)
        lines += [_comment_line(indent + 1, c) for c in slots.dangling]
        lines.append(_Line(indent, "}"))
        return lines, hoisted

    def _conditions(self, head: str, conds: Sequence[ast.Expr], comments: list[ast.Comment],
                    indent: int, braces: tuple[Pos, Pos] | None) -> Emitted:
        if not conds:
            raise ValueError(f"`{head}` needs at least one condition")
        if len(conds) == 1:
            return _expr_lines(indent, f"{head} ", conds[0], condition=True), comments
        children = [_Child(_range(c.span), indent + 1, _inline_expr(indent + 1, "", c))
                    for c in conds]
        return self._block(head, children, comments, indent, braces)

    def _cond_clause(self, keyword: str, conds, toks, indent: int) -> _Child:
        if toks:
            rng, braces = _tok_range(toks), _tok_braces(toks)
        else:
            rng, braces = (_start(conds[0].span), _end(conds[-1].span)), None
        return _Child(rng, indent, lambda inner: self._conditions(keyword, conds, inner, indent, braces))

    def _route(self, route: ast.Route, comments: list[ast.Comment], indent: int) -> Emitted:
        if not route.entries:
            raise ValueError("a route needs at least one entry")
        toks = self._toks(route.span)
        open_pos = toks[1].start if len(toks) > 1 else _start(route.span)
        children = [_Child(_range(e.span), indent + 1, self._route_entry(e, indent + 1))
                    for e in route.entries]
        return self._block("route", children, comments, indent, (open_pos, _close(route.span)))

    @staticmethod
    def _route_entry(e: ast.RouteEntry, indent: int) -> Callable[[list[ast.Comment]], Emitted]:
        key = _name(e.key, "route key")
        if isinstance(e.value, ast.Name) and e.value.id in ast.EFFECTS:
            return _inline(indent, f"{key}: {e.value.id}")
        return _inline_expr(indent, f"{key}: ", e.value)

    def _object(self, prefix: str, obj: ast.ObjectLit, comments: list[ast.Comment],
                indent: int) -> Emitted:
        """An object that may spread over lines: `prefix{ … }`, or one entry per line."""
        hoisted, inside = _split(comments, _start(obj.span))
        inline = format_expr(obj)
        if not obj.entries or (not inside and len(INDENT * indent + prefix + inline) <= WIDTH):
            return [_Line(indent, prefix + inline)], comments
        children = [_Child(_range(e.span), indent + 1, self._entry(e, indent + 1))
                    for e in obj.entries]
        return self._block(prefix.rstrip(), children, inside, indent,
                           (_start(obj.span), _close(obj.span)))

    def _entry(self, e: ast.Entry, indent: int) -> Callable[[list[ast.Comment]], Emitted]:
        prefix = f"{format_key(e.key)}: "
        if isinstance(e.value, ast.ObjectLit):
            return lambda inner: self._object(prefix, e.value, inner, indent)
        return _inline_expr(indent, prefix, e.value)

    def _clause_object(self, keyword: str, obj: ast.ObjectLit, indent: int):
        if not obj.entries:
            return lambda inner: ([_Line(indent, f"{keyword} {{}}")], inner)
        return lambda inner: self._object(f"{keyword} ", obj, inner, indent)

    # ---- items

    def _risk(self, node: ast.RiskDecl, inner: list[ast.Comment]) -> Emitted:
        parts = _clauses(self._toks(node.span), lambda t, seen: "when" if t == "when" else None)
        head = f"risk {node.weight} {format_string(node.factor)} when"
        braces = _tok_braces(parts["when"]) if "when" in parts else None
        return self._conditions(head, node.conditions, inner, 0, braces)

    def _default(self, node: ast.DefaultDecl, inner: list[ast.Comment]) -> Emitted:
        def mark(tok: str, seen: set[str]) -> str | None:
            return "header" if not seen else "route" if tok == "route" else None

        parts = _clauses(self._toks(node.span), mark)
        header = f"default {node.effect}" + (f" {format_string(node.reason)}" if node.reason is not None else "")
        children = [_Child(_tok_range(parts["header"]) if parts else (_start(node.span),) * 2,
                           0, _inline(0, header))]
        if node.route is not None:
            children.append(_Child(_range(node.route.span), 1,
                                   lambda c: self._route(node.route, c, 1)))
        return self._container(children, inner, 1)

    def _container(self, children: Sequence[_Child], comments: list[ast.Comment],
                   dangling_indent: int) -> Emitted:
        slots = _attach([c.rng for c in children], comments)
        lines = _assemble(children, slots)
        lines += [_comment_line(dangling_indent, c) for c in slots.dangling]
        return lines, []

    def _rule(self, rule: ast.RuleDecl, inner: list[ast.Comment]) -> Emitted:
        def mark(tok: str, seen: set[str]) -> str | None:
            if not seen:
                return "header"
            if tok in ast.EFFECTS:
                return "effect"
            if tok == "message" and "effect" in seen and "when" not in seen:
                return "message"
            return tok if tok in ("when", "unless", "route", "with") else None

        parts = _clauses(self._toks(rule.span), mark)

        def rng(name: str, fallback: Range | None) -> Range | None:
            return _tok_range(parts[name]) if name in parts else fallback

        head = f"rule {_name(rule.name, 'rule')}"
        if rule.priority is not None:
            head += f" priority {rule.priority}"
        effect = rule.effect + (f" {format_string(rule.reason)}" if rule.reason is not None else "")
        children = [
            _Child(rng("header", (_start(rule.span),) * 2), 0, _inline(0, head)),
            _Child(rng("effect", None), 1, _inline(1, effect)),
        ]
        if rule.message is not None:
            children.append(_Child(rng("message", None), 1, _inline(1, f"message {format_string(rule.message)}")))
        children.append(self._cond_clause("when", rule.when, parts.get("when"), 1))
        if rule.unless:
            children.append(self._cond_clause("unless", rule.unless, parts.get("unless"), 1))
        if rule.route is not None:
            children.append(_Child(_range(rule.route.span), 1, lambda c: self._route(rule.route, c, 1)))
        if rule.obligations is not None:
            children.append(_Child(rng("with", _range(rule.obligations.span)), 1,
                                   self._clause_object("with", rule.obligations, 1)))
        return self._container(children, inner, 1)

    def _test(self, test: ast.TestDecl, inner: list[ast.Comment]) -> Emitted:
        toks = self._toks(test.span)
        opening = next((i for i, t in enumerate(toks) if t.text == "{"), None)
        parts: dict[str, list[_Tok]] = {}
        if opening is not None:
            clause_words = ("input", "now", "facts", "expect")
            parts = _clauses(toks[opening + 1 : -1], lambda t, seen: t if t in clause_words else None)
        open_pos = toks[opening].start if opening is not None else _start(test.span)

        def rng(name: str, fallback: Span | None) -> Range | None:
            if name in parts:
                return _tok_range(parts[name])
            return _range(fallback) if fallback is not None else None

        children: list[_Child] = []
        if test.input is not None:
            children.append(_Child(rng("input", test.input.span), 1, self._clause_object("input", test.input, 1)))
        if test.now is not None:
            children.append(_Child(rng("now", None), 1, _inline(1, f"now {format_string(test.now)}")))
        if test.facts is not None:
            children.append(_Child(rng("facts", test.facts.span), 1, self._clause_object("facts", test.facts, 1)))
        if test.expect is not None:
            children.append(_Child(rng("expect", test.expect.span), 1, _inline(1, self._expect(test.expect))))
        if not children:
            raise ValueError("a test needs at least one clause")
        return self._block(f"test {format_string(test.name)}", children, inner, 0,
                           (open_pos, _close(test.span)))

    @staticmethod
    def _expect(e: ast.Expect) -> str:
        text = f"expect {e.effect}"
        if e.reason is not None:
            text += f" {format_string(e.reason)}"
        if e.role is not None:
            text += f" role {format_string(e.role)}"
        return text
