"""Text → AST. The only module that knows Lark.

`parse_source` never raises for bad input: it returns the module (or None) and the
diagnostics. Syntax errors carry a location and name what was expected.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from gavel.lang import syntax as ast
from gavel.lang.diagnostics import Diagnostic, Fix, did_you_mean, error
from gavel.lang.source import Source, Span

MAX_SOURCE_BYTES = 256 * 1024 * 1024  # a backstop: the edges apply the configured limit (GAVEL_MAX_RULES_FILE_BYTES)
MAX_NESTING = 64
MAX_EXPR_DEPTH = 200

# Newlines after these tokens continue the line (the expression is unfinished).
_CONTINUE_AFTER = frozenset(
    "_NL LBRACE BLOCK_OPEN LPAR LSQB COMMA COLON EQUAL AND OR NOT IN NOT_IN EQ NE LT LE GT GE"
    " PLUS MINUS STAR SLASH WHEN UNLESS SCOPE ROUTE WITH".split()
)
# Newlines before these tokens continue the previous line.
_CONTINUE_BEFORE = frozenset("AND OR RPAR RSQB DOT_NAME PLUS STAR SLASH EQ NE LT LE GT GE IN NOT_IN".split())
_BLOCK_KEYWORDS = frozenset(("WHEN", "UNLESS", "SCOPE"))
_OPENERS = {"LBRACE": "{", "BLOCK_OPEN": "{", "LPAR": "(", "LSQB": "["}
_CLOSERS = frozenset(("RBRACE", "RPAR", "RSQB"))

_TOKEN_NAMES = {
    "NAME": "a name", "DOT_NAME": "`.name`", "STRING": "a string", "NUMBER": "a number",
    "DURATION": "a duration", "_NL": "a new line", "LBRACE": "`{`", "RBRACE": "`}`",
    "BLOCK_OPEN": "`{`", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`",
    "COMMA": "`,`", "COLON": "`:`", "EQUAL": "`=`", "EQ": "`==`", "NE": "`!=`", "LT": "`<`",
    "LE": "`<=`", "GT": "`>`", "GE": "`>=`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`",
    "SLASH": "`/`", "NOT_IN": "`not in`", "$END": "the end of the file",
}


class _Blocks:
    """Postlexer: newlines separate things only inside `{ }`; see grammar.lark."""

    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[str] = []
        prev = "_NL"
        pending: Token | None = None
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if stack and stack[-1] == "{" and prev not in _CONTINUE_AFTER and pending is None:
                    pending = tok
                continue
            if pending is not None:
                if kind not in _CONTINUE_BEFORE:
                    yield pending
                pending = None
            if kind == "LBRACE" and prev in _BLOCK_KEYWORDS:
                tok = Token.new_borrow_pos("BLOCK_OPEN", tok.value, tok)
                kind = "BLOCK_OPEN"
            if kind in _OPENERS:
                stack.append(_OPENERS[kind])
                if len(stack) > MAX_NESTING:
                    raise _TooDeep(tok)
            elif kind in _CLOSERS and stack:
                stack.pop()
            yield tok
            prev = kind


class _TooDeep(Exception):
    def __init__(self, tok: Token):
        self.tok = tok


class _SyntaxProblem(Exception):
    """Raised inside the transformer for errors the grammar cannot express."""

    def __init__(self, message: str, span: Span, help: str | None = None, fixes: tuple[Fix, ...] = ()):
        self.message, self.span, self.help, self.fixes = message, span, help, fixes


@cache
def _parser() -> tuple[Lark, _ToAst]:
    """The parser, with the AST transformer applied inline by the LALR parser: no intermediate
    parse tree is built, which halves parsing time. Lark gives inline callbacks no positions, so
    each node's span is derived from its children (tokens and already-built nodes). The
    transformer is told which file it works on before each parse, under `_PARSE_LOCK`."""
    grammar = resources.files("gavel.lang").joinpath("grammar.lark").read_text("utf-8")
    transformer = _ToAst("<unset>", [])
    lark = Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        postlex=_Blocks(),
        maybe_placeholders=True,
        strict=False,
        transformer=transformer,
    )
    return lark, transformer


_PARSE_LOCK = threading.Lock()


def parse_source(source: Source) -> tuple[ast.Module | None, tuple[Diagnostic, ...]]:
    """Parse one file. Returns (module, ()) or (None, diagnostics)."""
    if len(source.text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        return None, (error("E006", f"file is larger than {MAX_SOURCE_BYTES} bytes", Span.point(source.path, 1, 1)),)
    comments: list[ast.Comment] = []
    parser, transformer = _parser()
    try:
        with _PARSE_LOCK:
            transformer.path, transformer.comments = source.path, comments
            module = _parse_with_comments(parser, source, comments)
    except _TooDeep as exc:
        return None, (error("E005", f"nesting deeper than {MAX_NESTING} levels", _tok_span(source.path, exc.tok)),)
    except _SyntaxProblem as exc:
        return None, (error("E002", exc.message, exc.span, exc.help, exc.fixes),)
    except UnexpectedInput as exc:
        return None, (_syntax_error(source, exc),)
    except RecursionError:
        return None, (error("E005", "expression nested too deeply", Span.point(source.path, 1, 1)),)
    deep = _too_deep(module)
    if deep is not None:
        return None, (error("E005", f"expression nested deeper than {MAX_EXPR_DEPTH} levels", deep),)
    return module, ()


def _too_deep(module: ast.Module) -> Span | None:
    """The span of an expression nested too deeply for the later (recursive) passes, if any."""
    stack = [(item, 0) for item in module.items]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPR_DEPTH:
            return getattr(node, "span", None) or Span.point(module.path, 1, 1)
        for name in getattr(node, "__dataclass_fields__", {}):
            if name == "span":
                continue
            value = getattr(node, name)
            children = value if isinstance(value, tuple) else (value,)
            for child in children:
                if hasattr(child, "__dataclass_fields__"):
                    stack.append((child, depth + 1))
    return None


def _parse_with_comments(parser: Lark, source: Source, comments: list):
    # Lark's lexer_callbacks are fixed at construction; scanning for comments here keeps the
    # cached parser free of per-call state (strings are matched first so `"#"` is no comment).
    for m in re.finditer(r'"(?:[^"\\\n]|\\[^\n])*"|#[^\r\n]*', source.text):
        if m.group().startswith("#"):
            line = source.text.count("\n", 0, m.start()) + 1
            col = m.start() - (source.text.rfind("\n", 0, m.start()) + 1) + 1
            comments.append(ast.Comment(m.group(), Span(source.path, line, col, line, col + len(m.group()))))
    return parser.parse(source.text)


def _tok_span(path: str, tok: Token) -> Span:
    line = tok.line or 1
    col = tok.column or 1
    end_line = tok.end_line or line
    end_col = tok.end_column or col + max(len(str(tok)), 1)
    return Span(path, line, col, end_line, end_col)


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "a new line"
    if tok.type == "STRING":
        return f"string {tok.value}"
    return f"`{tok.value}`"


def _expected(names) -> str:
    shown = sorted({_TOKEN_NAMES.get(n, f"`{n.lower()}`") for n in names if not n.startswith("__")})
    if len(shown) > 8:
        shown = shown[:8] + ["…"]
    return ", ".join(shown)


def _syntax_error(source: Source, exc: UnexpectedInput) -> Diagnostic:
    path = source.path
    if isinstance(exc, UnexpectedCharacters):
        ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else ""
        span = Span(path, exc.line, exc.column, exc.line, exc.column + 1)
        if ch == '"':
            return error("E003", "unterminated string", span, "strings are double-quoted and end on the same line")
        if ch == "'":
            return error("E004", "strings use double quotes", span, 'write "text", not \'text\'')
        return error("E001", f"unexpected character `{ch}`", span)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            line = source.text.count("\n") + 1
            col = len(source.text) - (source.text.rfind("\n") + 1) + 1
            span = Span.point(path, line, col)
        else:
            span = _tok_span(path, tok)
        expected = _expected(exc.expected or exc.accepts or ())
        return error("E001", f"unexpected {_describe(tok)}", span, f"expected {expected}" if expected else None)
    if isinstance(exc, UnexpectedEOF):
        line = source.text.count("\n") + 1
        return error("E001", "unexpected end of file", Span.point(path, line, 1), f"expected {_expected(exc.expected)}")
    return error("E001", str(exc).splitlines()[0], Span.point(path, 1, 1))


# ---------------------------------------------------------------- transformer

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}
_DURATION_UNITS = {"ms": timedelta(milliseconds=1), "s": timedelta(seconds=1), "m": timedelta(minutes=1),
                   "h": timedelta(hours=1), "d": timedelta(days=1)}


def _unescape(tok: Token, path: str) -> str:
    raw = tok.value[1:-1]
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1]
        col = (tok.column or 1) + 1 + i
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", raw[i + 2 : i + 6] or ""):
            out.append(chr(int(raw[i + 2 : i + 6], 16)))
            i += 6
        else:
            span = Span(path, tok.line, col, tok.line, col + 2)
            raise _SyntaxProblem(f"unknown escape `\\{nxt}`", span, 'escapes are \\\\ \\" \\n \\t \\uXXXX')
    return "".join(out)


@dataclass(frozen=True, slots=True)
class _Meta:
    """The extent of a rule's children: what `propagate_positions` would give a tree."""

    line: int
    column: int
    end_line: int
    end_column: int
    empty: bool = False


def _extent(child) -> tuple[int, int, int, int] | None:
    if isinstance(child, Token):
        if child.line is None:
            return None
        return child.line, child.column, child.end_line, child.end_column
    span = getattr(child, "span", None)
    if isinstance(span, Span) and span.line:
        return span.line, span.column, span.end_line, span.end_column
    if isinstance(child, tuple) and child:
        if isinstance(child[-1], Span):  # a test clause: (kind, value, span)
            s = child[-1]
            return s.line, s.column, s.end_line, s.end_column
        first, last = _extent(child[0]), _extent(child[-1])
        if first and last:
            return first[0], first[1], last[2], last[3]
    return None


def _meta_of(children) -> _Meta:
    first = last = None
    for child in children:
        found = _extent(child)
        if found is not None:
            first = first or found
            last = found
    if first is None:
        return _Meta(0, 0, 0, 0, empty=True)
    return _Meta(first[0], first[1], last[2], last[3])


def _spanned(method):
    def callback(self, children):
        return method(self, _meta_of(children), children)

    callback.__name__ = method.__name__
    return callback


class _Block(tuple):
    """Conditions in the making: a tuple that remembers the extent of its clause (braces and
    keyword included), so the declaration around it gets the right span. Declarations store
    plain tuples."""

    span: Span


def _block(items, span: Span) -> _Block:
    block = _Block(items)
    block.span = span
    return block


class _ToAst(Transformer):
    def __init__(self, path: str, comments: list[ast.Comment]):
        super().__init__(visit_tokens=False)
        self.path = path
        self.comments = comments

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span.point(self.path, 1, 1)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return _tok_span(self.path, tok)

    def _soft(self, tok: Token, expected: str) -> None:
        if tok.value != expected:
            close = did_you_mean(tok.value, [expected]) is not None
            raise _SyntaxProblem(f"expected `{expected}`, found `{tok.value}`", self._tspan(tok),
                                 f"did you mean `{expected}`?" if close else None,
                                 (Fix.replace(self._tspan(tok), expected),) if close else ())

    # ---- file and declarations

    @_spanned
    def start(self, meta, children):
        package, *items = children
        return ast.Module(self.path, package, tuple(items), tuple(self.comments), self._span(meta))

    @_spanned
    def package_decl(self, meta, children):
        name = children[1].value + "".join(t.value for t in children[2:])
        return ast.PackageDecl(name, self._span(meta))

    @_spanned
    def let_decl(self, meta, children):
        _, name, value = children
        return ast.LetDecl(name.value, value, self._span(meta))

    @_spanned
    def scope_decl(self, meta, children):
        return ast.ScopeDecl(tuple(children[1]), self._span(meta))

    @_spanned
    def default_decl(self, meta, children):
        _, effect, reason, route = children
        return ast.DefaultDecl(effect, self._string(reason), route, self._span(meta))

    @_spanned
    def risk_decl(self, meta, children):
        _, weight, factor, _when, conds = children
        return ast.RiskDecl(weight, self._string(factor), tuple(conds), self._span(meta))

    @_spanned
    def rule_decl(self, meta, children):
        _, name, priority, effect, reason, message, when, unless, route, obligations = children
        return ast.RuleDecl(
            name=name.value, priority=priority, effect=effect, reason=self._string(reason),
            message=message, when=tuple(when), unless=tuple(unless or ()), route=route,
            obligations=obligations, span=self._span(meta),
        )

    def priority_clause(self, children):
        keyword, value = children
        self._soft(keyword, "priority")
        return value

    def message_clause(self, children):
        keyword, text = children
        self._soft(keyword, "message")
        return self._string(text)

    @_spanned
    def when_clause(self, meta, children):
        return _block(children[1], self._span(meta))

    @_spanned
    def unless_clause(self, meta, children):
        return _block(children[1], self._span(meta))

    @_spanned
    def cond_block(self, meta, children):
        return _block((c for c in children if not isinstance(c, Token)), self._span(meta))

    @_spanned
    def conditions(self, meta, children):
        (only,) = children
        return only if isinstance(only, _Block) else _block((only,), self._span(meta))

    @_spanned
    def route_clause(self, meta, children):
        return ast.Route(tuple(c for c in children if isinstance(c, ast.RouteEntry)), self._span(meta))

    @_spanned
    def route_entry(self, meta, children):
        key, value = children
        if isinstance(value, str):
            value = ast.Name(value, self._span(meta))
        return ast.RouteEntry(key.value, value, self._span(meta))

    def with_clause(self, children):
        return children[1]

    def effect(self, children):
        return children[0].value

    def signed_int(self, children):
        minus, number = children
        if "." in number.value:
            raise _SyntaxProblem("expected a whole number", self._tspan(number))
        value = int(number.value)
        return -value if minus is not None else value

    @_spanned
    def test_decl(self, meta, children):
        name = self._string(children[1])
        fields: dict[str, object] = {"input": None, "now": None, "facts": None, "expect": None}
        for kind, value, span in (c for c in children[2:] if isinstance(c, tuple)):
            if fields.get(kind) is not None:
                raise _SyntaxProblem(f"`{kind}` given twice in one test", span)
            fields[kind] = value
        return ast.TestDecl(name, fields["input"], fields["now"], fields["facts"], fields["expect"], self._span(meta))

    @_spanned
    def test_object(self, meta, children):
        keyword, obj = children
        if keyword.value not in ("input", "facts"):
            hint = did_you_mean(keyword.value, ["input", "facts"])
            raise _SyntaxProblem(
                f"unknown test clause `{keyword.value}`", self._tspan(keyword),
                f"did you mean `{hint}`?" if hint else "a test has `input`, `now`, `facts` and `expect`",
                (Fix.replace(self._tspan(keyword), hint),) if hint else (),
            )
        return keyword.value, obj, self._span(meta)

    @_spanned
    def test_now(self, meta, children):
        return "now", self._string(children[1]), self._span(meta)

    @_spanned
    def test_expect(self, meta, children):
        keyword, effect, reason, role_kw, role = children
        self._soft(keyword, "expect")
        if role_kw is not None:
            self._soft(role_kw, "role")
        expect = ast.Expect(effect, self._string(reason), self._string(role), self._span(meta))
        return "expect", expect, self._span(meta)

    # ---- expressions

    def _string(self, tok: Token | None) -> str | None:
        return None if tok is None else _unescape(tok, self.path)

    @_spanned
    def or_expr(self, meta, children):
        left, _, right = children
        return ast.Binary("or", left, right, self._span(meta))

    @_spanned
    def and_expr(self, meta, children):
        left, _, right = children
        return ast.Binary("and", left, right, self._span(meta))

    @_spanned
    def not_(self, meta, children):
        return ast.Unary("not", children[1], self._span(meta))

    @_spanned
    def quantifier(self, meta, children):
        kind, var, _in, collection, body = children
        return ast.Quantifier(kind.value, var.value, collection, body, self._span(meta))

    @_spanned
    def compare(self, meta, children):
        left, op, right = children
        return ast.Binary(op, left, right, self._span(meta))

    def comp_op(self, children):
        tok = children[0]
        return "not in" if tok.type == "NOT_IN" else tok.value

    @_spanned
    def arith(self, meta, children):
        left, op, right = children
        return ast.Binary(op.value, left, right, self._span(meta))

    @_spanned
    def neg(self, meta, children):
        operand = children[1]
        if isinstance(operand, ast.Literal) and operand.kind == "number":
            return ast.Literal("number", -operand.value, self._span(meta))
        return ast.Unary("-", operand, self._span(meta))

    @_spanned
    def member(self, meta, children):
        obj, name = children
        return ast.Member(obj, name.value[1:], self._span(meta))

    @_spanned
    def index(self, meta, children):
        obj, _, idx, _ = children
        return ast.Index(obj, idx, self._span(meta))

    def paren(self, children):
        return children[1]

    @_spanned
    def number(self, meta, children):
        try:
            value = Decimal(children[0].value)
        except InvalidOperation as exc:  # pragma: no cover - the lexer only admits digits
            raise _SyntaxProblem("malformed number", self._span(meta)) from exc
        return ast.Literal("number", value, self._span(meta))

    @_spanned
    def duration(self, meta, children):
        m = re.fullmatch(r"([0-9]+)(ms|s|m|h|d)", children[0].value)
        assert m is not None
        return ast.Literal("duration", int(m.group(1)) * _DURATION_UNITS[m.group(2)], self._span(meta))

    @_spanned
    def string(self, meta, children):
        return ast.Literal("string", self._string(children[0]), self._span(meta))

    @_spanned
    def true(self, meta, _):
        return ast.Literal("bool", True, self._span(meta))

    @_spanned
    def false(self, meta, _):
        return ast.Literal("bool", False, self._span(meta))

    @_spanned
    def null(self, meta, _):
        return ast.Literal("null", None, self._span(meta))

    @_spanned
    def name(self, meta, children):
        return ast.Name(children[0].value, self._span(meta))

    @_spanned
    def call(self, meta, children):
        func, *args = children
        return ast.Call(func.value, tuple(a for a in args if a is not None and not isinstance(a, Token)),
                        self._span(meta))

    @_spanned
    def list_lit(self, meta, children):
        return ast.ListLit(tuple(c for c in children if c is not None and not isinstance(c, Token)), self._span(meta))

    @_spanned
    def set_lit(self, meta, children):
        return ast.SetLit(tuple(c for c in children if not isinstance(c, Token)), self._span(meta))

    @_spanned
    def object_lit(self, meta, children):
        entries = tuple(c for c in children if isinstance(c, ast.Entry))
        seen: set[str] = set()
        for e in entries:
            if e.key in seen:
                raise _SyntaxProblem(f"key `{e.key}` given twice", e.span)
            seen.add(e.key)
        return ast.ObjectLit(entries, self._span(meta))

    @_spanned
    def empty_object(self, meta, _):
        return ast.ObjectLit((), self._span(meta))

    @_spanned
    def entry(self, meta, children):
        key, value = children
        text = self._string(key) if key.type == "STRING" else key.value
        return ast.Entry(text, value, self._span(meta))
