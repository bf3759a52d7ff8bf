"""The checked intermediate representation: names resolved, types known.

`check.py` produces it from the AST; `lower.py` folds constants, inlines lets that are
constants or plain paths, and computes specificity. The engine compiles it to closures and a
decision tree. Spans ride along (never in equality) so runtime errors can point at source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from gavel.lang.source import NO_SPAN, Span
from gavel.lang.types import Type


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    value: Any
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class InputPath:
    """A path into the request (`source="request"`) or the server's facts (`"fact"`)."""

    source: str
    keys: tuple[str, ...]
    type: Type
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(self.keys)


@dataclass(frozen=True, slots=True)
class Now:
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RiskRef:
    field: str
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class LetRef:
    package: str
    name: str
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    slot: int
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class GetMember:
    obj: IExpr
    name: str
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class GetIndex:
    obj: IExpr
    index: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class CallFn:
    name: str
    args: tuple[IExpr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # and | or
    left: IExpr
    right: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >= in "not in"
    left: IExpr
    right: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: IExpr
    right: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Quant:
    kind: str  # any | all
    slot: int
    collection: IExpr
    body: IExpr
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MakeList:
    items: tuple[IExpr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MakeSet:
    items: tuple[IExpr, ...]
    type: Type
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MakeObject:
    keys: tuple[str, ...]
    values: tuple[IExpr, ...]
    type: Type
    span: Span = _span()


IExpr = (
    Const | InputPath | Now | RiskRef | LetRef | Var | GetMember | GetIndex | CallFn
    | Not | Neg | Logic | Compare | Arith | Quant | MakeList | MakeSet | MakeObject
)


@dataclass(frozen=True, slots=True)
class RouteIR:
    role: str
    approvals: int
    timeout: timedelta
    on_timeout: str  # deny | allow | escalate
    escalate_to: str | None


@dataclass(frozen=True, slots=True)
class RuleIR:
    """A rule, or a package default (`is_default`), ready for the engine."""

    id: str
    package: str
    name: str
    effect: str
    reason_code: str
    message: str | None
    priority: int
    when: tuple[IExpr, ...]
    unless: tuple[IExpr, ...]
    route: RouteIR | None
    obligations: MakeObject | None
    specificity: int = 0
    request_paths: tuple[str, ...] = ()
    is_default: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RiskIR:
    id: str
    package: str
    weight: int
    factor: str
    when: tuple[IExpr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PackageIR:
    name: str
    scope: tuple[IExpr, ...]
    lets: tuple[tuple[str, IExpr], ...]
    rules: tuple[RuleIR, ...]
    default: RuleIR | None
    risks: tuple[RiskIR, ...]
    scope_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TestIR:
    name: str
    input: dict
    facts: dict | None
    now: str | None
    expect_effect: str | None
    expect_reason: str | None
    expect_role: str | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ProgramIR:
    packages: tuple[PackageIR, ...]
    tests: tuple[TestIR, ...]
