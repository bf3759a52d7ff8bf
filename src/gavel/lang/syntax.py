"""The abstract syntax tree of `.rules` files.

Frozen dataclasses; every node keeps its `span` (file, line, column) but spans never take part
in equality, so `parse(fmt(text)) == parse(text)` compares meaning, not layout. This module
knows nothing of Lark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Literal as Lit

from gavel.lang.source import NO_SPAN, Span

EFFECTS = ("allow", "require_approval", "deny")
Effect = Lit["allow", "require_approval", "deny"]


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Literal:
    """A scalar literal; `kind` keeps `true` apart from `1` (Python says True == 1)."""

    kind: Lit["number", "string", "bool", "null", "duration"]
    value: Decimal | str | bool | timedelta | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Member:
    obj: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    index: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Unary:
    op: Lit["not", "-"]
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Binary:
    """`and or + - * / == != < <= > >= in not in`."""

    op: str
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quantifier:
    kind: Lit["any", "all"]
    var: str
    collection: Expr
    body: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SetLit:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ObjectLit:
    entries: tuple[Entry, ...]
    span: Span = _span()


Expr = (
    Literal | Name | Member | Index | Call | Unary | Binary | Quantifier | SetLit | ListLit | ObjectLit
)

COMPARISON_OPS = ("==", "!=", "<", "<=", ">", ">=", "in", "not in")
ARITHMETIC_OPS = ("+", "-", "*", "/")
LOGICAL_OPS = ("and", "or")


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class RouteEntry:
    key: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Route:
    entries: tuple[RouteEntry, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PackageDecl:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LetDecl:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ScopeDecl:
    conditions: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class DefaultDecl:
    effect: Effect
    reason: str | None
    route: Route | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RiskDecl:
    weight: int
    factor: str
    conditions: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RuleDecl:
    name: str
    priority: int | None
    effect: Effect
    reason: str | None
    message: str | None
    when: tuple[Expr, ...]
    unless: tuple[Expr, ...]
    route: Route | None
    obligations: ObjectLit | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Expect:
    effect: Effect
    reason: str | None
    role: str | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestDecl:
    name: str
    input: ObjectLit | None
    now: str | None
    facts: ObjectLit | None
    expect: Expect | None
    span: Span = _span()


Item = (
    LetDecl | ScopeDecl | DefaultDecl | RiskDecl | RuleDecl | TestDecl
)


@dataclass(frozen=True, slots=True)
class Comment:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file."""

    path: str = field(compare=False)
    package: PackageDecl
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
    span: Span = _span()
