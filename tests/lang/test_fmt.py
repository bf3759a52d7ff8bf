"""`gavel fmt`: golden layouts, parenthesisation, comments, and round trips on generated ASTs.

Goldens live in `fmt_cases/` as `NAME.in.rules` → `NAME.out.rules`; regenerate the outputs
with `GAVEL_UPDATE_GOLDENS=1` and review the diff.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gavel.lang import fmt as fmt_module
from gavel.lang import syntax as ast
from gavel.lang.fmt import KEYWORDS, format_expr, format_module, format_source
from gavel.lang.parse import parse_source
from gavel.lang.source import Source
from tests.goldens import check_golden

CASES = Path(__file__).parent / "fmt_cases"
LANGUAGE_MD_EXAMPLE = Path(__file__).parent / "cases" / "language_md_example.rules"
# the recursive expression strategies print a long (harmless) repr when hypothesis labels draws
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def parse(text: str, path: str = "t.rules") -> ast.Module:
    module, diags = parse_source(Source(path, text))
    assert module is not None, [d.headline() for d in diags]
    return module


def fmt(text: str) -> str:
    out, diags = format_source(Source("t.rules", text))
    assert out is not None, [d.headline() for d in diags]
    return out


def comment_texts(text: str) -> Counter:
    return Counter(c.text.rstrip() for c in parse(text).comments)


def assert_well_formatted(source: str, out: str) -> None:
    assert parse(out) == parse(source)
    assert comment_texts(out) == comment_texts(source)
    assert fmt(out) == out


# ---------------------------------------------------------------- goldens


def _golden_pairs() -> list[tuple[str, Path, Path]]:
    pairs = [("language_md_example", LANGUAGE_MD_EXAMPLE, CASES / "language_md_example.out.rules")]
    for src in sorted(CASES.glob("*.in.rules")):
        name = src.name.removesuffix(".in.rules")
        pairs.append((name, src, CASES / f"{name}.out.rules"))
    return pairs


@pytest.mark.parametrize(("name", "src", "expected"), _golden_pairs(), ids=lambda v: v if isinstance(v, str) else "")
def test_golden(name: str, src: Path, expected: Path) -> None:
    source = src.read_text("utf-8")
    out = fmt(source)
    check_golden(expected, out)
    assert_well_formatted(source, out)


def test_language_md_example_keeps_its_shape() -> None:
    out = fmt(LANGUAGE_MD_EXAMPLE.read_text("utf-8"))
    assert "let small = 500\nlet large = 10000\n" in out
    assert '  facts { agent: { spend: { today: 0 }, daily_limit: 2000 } }\n' in out
    assert "    timeout: 1d\n" in out  # the largest exact unit


def test_syntax_error_returns_the_parse_diagnostics() -> None:
    out, diags = format_source(Source("bad.rules", "package p\nrule r deny when {1} == x\n"))
    assert out is None
    assert diags and diags[0].code == "E001"


def test_crlf_input() -> None:
    source = "package p  # head\r\nlet a = 1\r\n# own\r\nlet b = 2\r\n"
    out = fmt(source)
    assert out == "package p  # head\n\nlet a = 1\n# own\nlet b = 2\n"
    assert parse(out) == parse(source)


def test_format_module_without_text_keeps_every_comment() -> None:
    source = (CASES / "comments.in.rules").read_text("utf-8")
    out = format_module(parse(source))
    assert parse(out) == parse(source)
    assert comment_texts(out) == comment_texts(source)


# ---------------------------------------------------------------- comments


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            "package p\nrule r\n  deny\n  when {\n    # first\n    a\n    b  # second\n    # last\n  }\n",
            "package p\n\nrule r\n  deny\n  when {\n    # first\n    a\n    b  # second\n    # last\n  }\n",
            id="block-leading-trailing-dangling",
        ),
        pytest.param(
            "package p\nrule r deny when { # why\n a\n }\n",
            "package p\n\nrule r\n  deny\n  # why\n  when a\n",
            id="one-condition-block-hoists",
        ),
        pytest.param(
            "package p\nlet x = (a or # left\n b)\n",
            "package p\n\n# left\nlet x = a or b\n",
            id="inside-expression-moves-before",
        ),
        pytest.param(
            "package p\nrule r deny when a\n  route {  # open\n    role: \"x\"\n    # end\n  }  # close\n",
            "package p\n\nrule r\n  deny\n  when a\n  route {  # open\n    role: \"x\"\n    # end\n  }  # close\n",
            id="route",
        ),
        pytest.param(
            "package p\ntest \"t\" {\n  # e\n  expect allow\n  # i\n  input { a: 1 }\n}\n",
            "package p\n\ntest \"t\" {\n  # i\n  input { a: 1 }\n  # e\n  expect allow\n}\n",
            id="test-clauses-reordered-with-their-comments",
        ),
        pytest.param(
            "package p\ntest \"t\" {\n  input { a: 1, # one\n  b: 2 }\n}\n",
            "package p\n\ntest \"t\" {\n  input {\n    a: 1  # one\n    b: 2\n  }\n}\n",
            id="comment-keeps-an-object-multiline",
        ),
        pytest.param(
            "package p\nlet a = 1\n\n# section\n\nlet b = 2\n# the end\n",
            "package p\n\nlet a = 1\n\n# section\n\nlet b = 2\n# the end\n",
            id="blank-lines-around-top-level-comments",
        ),
    ],
)
def test_comment_placement(source: str, expected: str) -> None:
    out = fmt(source)
    assert out == expected
    assert_well_formatted(source, out)


# ---------------------------------------------------------------- expressions

A, B, C, D = (ast.Name(n) for n in "abcd")


def num(text: str) -> ast.Literal:
    return ast.Literal("number", Decimal(text))


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        (ast.Binary("and", ast.Binary("or", A, B), C), "(a or b) and c"),
        (ast.Binary("or", A, ast.Binary("and", B, C)), "a or (b and c)"),
        (ast.Binary("and", A, ast.Binary("and", B, C)), "a and (b and c)"),
        (ast.Unary("not", ast.Binary("and", A, B)), "not (a and b)"),
        (ast.Binary("and", ast.Unary("not", A), B), "not a and b"),
        (ast.Binary("-", A, ast.Binary("-", B, C)), "a - (b - c)"),
        (ast.Binary("-", ast.Binary("-", A, B), C), "a - b - c"),
        (ast.Binary("*", ast.Binary("+", A, B), C), "(a + b) * c"),
        (ast.Binary("==", ast.Binary("<", A, B), C), "(a < b) == c"),
        (ast.Binary("in", A, ast.Binary("not in", B, C)), "a in (b not in c)"),
        (ast.Binary("and", ast.Quantifier("any", "x", C, ast.Binary(">", ast.Name("x"), num("1"))), ast.Name("y")),
         "(any x in c: x > 1) and y"),
        (ast.Unary("not", ast.Quantifier("all", "x", C, A)), "not (all x in c: a)"),
        (ast.Quantifier("any", "x", ast.Binary("in", A, B), ast.Quantifier("all", "y", C, ast.Binary("or", A, B))),
         "any x in (a in b): all y in c: a or b"),
        (ast.Unary("-", ast.Binary("+", A, B)), "-(a + b)"),
        (ast.Unary("-", ast.Unary("-", A)), "--a"),
        (ast.Binary("-", A, num("-5")), "a - -5"),
        (ast.Binary("*", num("-5"), A), "-5 * a"),
        (ast.Member(num("-5"), "x"), "(-5).x"),
        (ast.Unary("-", ast.Member(num("5"), "x")), "-5.x"),
        (ast.Member(ast.Call("f", (A,)), "y"), "f(a).y"),
        (ast.Index(ast.Call("f", ()), num("0")), "f()[0]"),
        (ast.Index(ast.Member(A, "b"), ast.Binary("or", C, D)), "a.b[c or d]"),
        (ast.Member(ast.Binary("+", A, B), "c"), "(a + b).c"),
        (ast.Call("f", (ast.Quantifier("any", "x", C, A), B)), "f(any x in c: a, b)"),
        (ast.Member(ast.Name("risk"), "score"), "risk.score"),
        (ast.Member(A, "when"), "a.when"),
    ],
)
def test_parentheses(expr: ast.Expr, text: str) -> None:
    assert format_expr(expr) == text
    module = parse(f"package p\nlet v = {text}\n")
    assert module.items[0].value == expr


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ast.Literal("number", Decimal("1E+2")), "100"),
        (ast.Literal("number", Decimal("-1.5E-3")), "-0.0015"),
        (ast.Literal("number", Decimal("120.00")), "120.00"),
        (ast.Literal("number", Decimal("-0")), "0"),
        (ast.Literal("duration", timedelta(hours=48)), "2d"),
        (ast.Literal("duration", timedelta(minutes=90)), "90m"),
        (ast.Literal("duration", timedelta(milliseconds=1500)), "1500ms"),
        (ast.Literal("duration", timedelta(0)), "0s"),
        (ast.Literal("string", 'a"b\\c\nd\te\x00\u202e\u2028\ud800é'),
         '"a\\"b\\\\c\\nd\\te\\u0000\\u202e\\u2028\\ud800é"'),
        (ast.ObjectLit((ast.Entry("default", A), ast.Entry("a b", B), ast.Entry("ok", C))),
         '{ "default": a, "a b": b, ok: c }'),
    ],
)
def test_literals(value: ast.Expr, text: str) -> None:
    assert format_expr(value) == text
    assert parse(f"package p\nlet v = {text}\n").items[0].value == value


@pytest.mark.parametrize(
    "expr",
    [
        ast.SetLit(()),
        ast.Unary("-", num("5")),
        ast.Name("when"),
        ast.Call("any", ()),
        ast.Literal("number", Decimal("NaN")),
        ast.Literal("duration", timedelta(microseconds=1)),
    ],
)
def test_unwritable_expressions_raise(expr: ast.Expr) -> None:
    with pytest.raises(ValueError):
        format_expr(expr)


def test_empty_objects_in_clauses_are_written_as_braces() -> None:
    text = ('package p\nrule r allow when action.amount > 1 with {}\n'
            'test "t" {\n  input {}\n  facts {}\n  expect deny\n}\n')
    out, diags = format_source(Source("m.rules", text))
    assert not diags and "with {}" in out and "input {}" in out and "facts {}" in out
    assert parse_source(Source("m.rules", out))[0] == parse_source(Source("m.rules", text))[0]
    assert format_source(Source("m.rules", out))[0] == out


# ---------------------------------------------------------------- generated ASTs

SOFT = ["priority", "message", "input", "facts", "expect", "role", "nothing", "index", "order",
        "notes", "android", "within", "ms", "d", "h", "in_stock", "not_in", "anyone", "nullable",
        "true_value", "_", "a", "x", "agent", "action"]
names = st.one_of(st.sampled_from(SOFT), st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True)).filter(
    lambda s: s not in KEYWORDS
)
members = st.one_of(names, st.sampled_from(sorted(KEYWORDS)))
keys = st.one_of(names, st.sampled_from(sorted(KEYWORDS)), st.text(max_size=4))
chars = st.one_of(
    st.characters(max_codepoint=0x2FFFF),
    st.sampled_from(list('"\\\n\t\r\x00\x7f\u202e\u2028\ud800#{}') + ["\U0001f600"]),
)
texts = st.text(alphabet=chars, max_size=8)
decimals = st.one_of(
    st.builds(lambda i, e: Decimal(i).scaleb(e), st.integers(-10**6, 10**6), st.integers(-6, 6)),
    st.sampled_from([Decimal("1E+2"), Decimal("-0.5"), Decimal("120.00"), Decimal("0E-3"), Decimal("-0")]),
)
durations = st.builds(lambda n, unit: timedelta(milliseconds=n * unit), st.integers(0, 1000),
                      st.sampled_from([1, 1000, 60_000, 3_600_000, 86_400_000]))
literals = st.one_of(
    decimals.map(lambda d: ast.Literal("number", d)),
    texts.map(lambda s: ast.Literal("string", s)),
    st.booleans().map(lambda b: ast.Literal("bool", b)),
    st.just(ast.Literal("null", None)),
    durations.map(lambda d: ast.Literal("duration", d)),
)
leaves = st.one_of(literals, names.map(ast.Name), st.sampled_from([ast.Name("now"), ast.Name("risk")]))
ops = st.sampled_from(ast.COMPARISON_OPS + ast.ARITHMETIC_OPS + ast.LOGICAL_OPS)


def _objects(sub: st.SearchStrategy, min_size: int = 0) -> st.SearchStrategy:
    entries = st.lists(st.tuples(keys, sub), min_size=min_size, max_size=3, unique_by=lambda kv: kv[0])
    return entries.map(lambda kvs: ast.ObjectLit(tuple(ast.Entry(k, v) for k, v in kvs)))


@cache
def exprs(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return leaves
    return st.deferred(lambda: _compound(exprs(depth - 1)))  # deferred: a short repr


def _compound(sub: st.SearchStrategy) -> st.SearchStrategy:
    items = st.lists(sub, max_size=3).map(tuple)
    return st.one_of(
        leaves,
        st.builds(ast.Member, sub, members),
        st.builds(ast.Index, sub, sub),
        st.builds(ast.Call, names, items),
        st.builds(ast.Unary, st.just("not"), sub),
        st.builds(ast.Unary, st.just("-"), sub).filter(
            lambda u: not (isinstance(u.operand, ast.Literal) and u.operand.kind == "number")
        ),
        st.builds(ast.Binary, ops, sub, sub),
        st.builds(ast.Quantifier, st.sampled_from(["any", "all"]), names, sub, sub),
        st.lists(sub, min_size=1, max_size=3).map(lambda xs: ast.SetLit(tuple(xs))),
        items.map(ast.ListLit),
        _objects(sub),
    )


EXPR = exprs(3)
conditions = st.lists(exprs(2), min_size=1, max_size=3).map(tuple)
effects = st.sampled_from(ast.EFFECTS)
maybe_text = st.none() | texts
routes = st.lists(
    st.builds(ast.RouteEntry, names, st.one_of(exprs(1), effects.map(ast.Name))), min_size=1, max_size=3
).map(lambda es: ast.Route(tuple(es)))
objects = _objects(exprs(2), min_size=1)
items = st.one_of(
    st.builds(ast.LetDecl, names, EXPR),
    st.builds(ast.ScopeDecl, conditions),
    st.builds(ast.DefaultDecl, effects, maybe_text, st.none() | routes),
    st.builds(ast.RiskDecl, st.integers(-100, 100), texts, conditions),
    st.builds(
        ast.RuleDecl, names, st.none() | st.integers(-100, 100), effects, maybe_text, maybe_text,
        conditions, st.just(()) | conditions, st.none() | routes, st.none() | objects,
    ),
    st.builds(
        ast.TestDecl, texts, st.none() | objects, maybe_text, st.none() | objects,
        st.none() | st.builds(ast.Expect, effects, maybe_text, maybe_text),
    ).filter(lambda t: (t.input, t.now, t.facts, t.expect) != (None, None, None, None)),
)
packages = st.tuples(names, st.lists(members, max_size=2)).map(lambda p: ".".join([p[0], *p[1]]))


@st.composite
def modules(draw: st.DrawFn) -> ast.Module:
    package = ast.PackageDecl(draw(packages))
    return ast.Module("gen.rules", package, tuple(draw(st.lists(items, max_size=6))))


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_round_trip(module: ast.Module) -> str:
    text = format_module(module)
    assert parse(text, "gen.rules") == module, text
    assert fmt(text) == text
    return text


@SETTINGS
@given(EXPR)
def test_generated_expressions_round_trip(expr: ast.Expr) -> None:
    assert_round_trip(ast.Module("gen.rules", ast.PackageDecl("p"), (ast.LetDecl("v", expr),)))


@SETTINGS
@given(conditions)
def test_generated_single_conditions_round_trip(conds: tuple[ast.Expr, ...]) -> None:
    rule = ast.RuleDecl("r", None, "deny", None, None, conds[:1], conds[1:2], None, None)
    assert_round_trip(ast.Module("gen.rules", ast.PackageDecl("p"), (rule, ast.ScopeDecl(conds[:1]))))


@SETTINGS
@given(modules())
def test_generated_modules_round_trip(module: ast.Module) -> None:
    assert_round_trip(module)


@SETTINGS
@given(modules())
def test_generated_modules_round_trip_when_everything_is_too_long(module: ast.Module) -> None:
    """A tiny width forces every `and`/`or` chain and every test object onto many lines."""
    with patch.object(fmt_module, "WIDTH", 8):
        text = assert_round_trip(module)
    assert parse(text, "gen.rules") == module


comment_words = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules(), st.data())
def test_messy_layout_and_injected_comments(module: ast.Module, data: st.DataObject) -> None:
    """Re-indent lines, add blank lines and comments anywhere a line allows: the formatter
    gives back the same AST, every comment, and a fixed point."""
    width = data.draw(st.sampled_from([8, 80]), label="width")
    out, injected = [], []
    with patch.object(fmt_module, "WIDTH", width):
        lines = format_module(module).splitlines()
    for i, line in enumerate(lines):
        if data.draw(st.booleans(), label=f"blank line before {i}"):
            out.append("")
        if data.draw(st.booleans(), label=f"own-line comment before {i}"):
            injected.append(f"# own {i}")
            out.append(" " * data.draw(st.integers(0, 6)) + injected[-1])
        if data.draw(st.booleans(), label=f"reindent {i}"):
            line = " " * data.draw(st.integers(0, 6)) + line.lstrip()
        if data.draw(st.booleans(), label=f"trailing comment on {i}"):
            injected.append(f"# trail {i} {data.draw(comment_words)}")
            line += " " + injected[-1]
        out.append(line)
    with patch.object(fmt_module, "WIDTH", width):
        formatted = fmt("\n".join(out) + "\n")
        assert parse(formatted) == module
        assert comment_texts(formatted) == Counter(c.rstrip() for c in injected)
        assert fmt(formatted) == formatted
