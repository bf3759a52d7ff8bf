"""The mutation operators of `mutation.py`: small, plausible faults, one per mutant, made on the AST.

Each operator is one a reviewer could miss in a diff, and most of them are what mutmut does:

- comparison: `<`↔`<=`, `>`↔`>=`, `==`↔`!=`, `is`↔`is not`, `in`↔`not in`
- boolean: `and`↔`or`
- not removed: `not x` → `x`;  sign removed: `-x` → `x`
- arithmetic: `+`↔`-`, `*`↔`/`, `//`→`/`, `%`→`/`, `**`→`*`, `<<`↔`>>`, `&`↔`|`, `^`→`&`
  (also in `x += …`, which is in addition made `x = …`)
- constant: `True`↔`False`, a number n → n + 1, a string or bytes s → `XX` s `XX`
- builtin: `min`↔`max`, `all`↔`any`
- loop: `break`↔`continue`
- assignment: `x = …` → `x = None` (one target: a name, attribute or subscript)
- call removed: a call used as a statement (`out.append(x)`, `factors.sort(…)`) → `pass`
- argument removed: one keyword argument of a call (`sorted(…, key=…)`, `loads(…, parse_float=…)`)

Never mutated: docstrings, imports, annotations, decorators and f-strings (they build messages;
mutating their wording tests the wording, not a decision). A mutant is numbered by its place in
a walk of the module's AST, so its number is stable while the file does not change.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

COMPARISONS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
ARITHMETIC: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
    ast.Mod: ast.Div, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitAnd,
}
BUILTINS = {"min": "max", "max": "min", "all": "any", "any": "all"}
MAX_SHOWN = 90  # characters of source shown for a mutant's before and after


@dataclass(frozen=True)
class Mutant:
    """One mutation of a file: where, what kind, and the code before and after."""

    number: int
    line: int
    column: int
    kind: str
    before: str
    after: str

    def describe(self) -> str:
        return f"line {self.line}: {self.kind}: `{self.before}` → `{self.after}`"


def list_mutants(source: str, functions: frozenset[str] | None = None) -> list[Mutant]:
    """Every mutant of `source`; with `functions`, only those inside the named top-level functions."""
    walker = _Walker(source, functions, target=None)
    walker.visit(ast.parse(source))
    return walker.found


def mutate(source: str, number: int, functions: frozenset[str] | None = None) -> ast.Module:
    """The module's AST with mutant `number` applied (line numbers kept, for tracebacks)."""
    walker = _Walker(source, functions, target=number)
    tree = walker.visit(ast.parse(source))
    if not walker.applied:
        raise ValueError(f"no mutant {number}: the file has {walker.count}")
    return ast.fix_missing_locations(tree)


class _Walker(ast.NodeTransformer):
    """Counts the mutation points in walk order; applies the one numbered `target`, if any."""

    def __init__(self, source: str, functions: frozenset[str] | None, target: int | None) -> None:
        self.source = source
        self.functions = functions
        self.target = target
        self.count = 0
        self.applied = False
        self.found: list[Mutant] = []
        self._inside = functions is None  # inside code that may be mutated

    # -- regions that are never mutated, or only within the chosen functions --------------------

    def visit_Module(self, node: ast.Module) -> ast.AST:
        node.body = self._skip_docstring(node.body)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.bases = [self.visit(b) for b in node.bases]
        node.body = self._skip_docstring(node.body)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        was_inside = self._inside
        if self.functions is not None and node.name in self.functions:
            self._inside = True
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [d if d is None else self.visit(d) for d in node.args.kw_defaults]
        node.body = self._skip_docstring(node.body)
        self._inside = was_inside
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.AST) -> ast.AST:
        return node

    visit_ImportFrom = visit_Import
    visit_JoinedStr = visit_Import  # f-strings: messages

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def _skip_docstring(self, body: list[ast.stmt]) -> list[ast.stmt]:
        first = body[:1]
        if first and isinstance(first[0], ast.Expr) and isinstance(first[0].value, ast.Constant) \
                and isinstance(first[0].value.value, str):
            return first + self._statements(body[1:])
        return self._statements(body)

    def _statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for statement in body:
            result = self.visit(statement)
            out.extend(result if isinstance(result, list) else [result])
        return out

    # -- the mutation points --------------------------------------------------------------------

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if self._inside:
            for kind, replacement in _replacements(node):
                new = self._offer(node, kind, replacement)
                if new is not None:
                    return new
        for field, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, field, self._statements(value))
            elif isinstance(value, list):
                setattr(node, field, [self.visit(v) if isinstance(v, ast.AST) else v for v in value])
            elif isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
        return node

    def _offer(self, node: ast.AST, kind: str, replacement: Callable[[], ast.AST]) -> ast.AST | None:
        number = self.count
        self.count += 1
        if self.target is None:
            self.found.append(Mutant(number, node.lineno, node.col_offset, kind, self._shown(node),
                                     _short(ast.unparse(_placed(replacement(), node)))))
            return None
        if number != self.target:
            return None
        self.applied = True
        return _placed(replacement(), node)

    def _shown(self, node: ast.AST) -> str:
        return _short(ast.get_source_segment(self.source, node) or ast.unparse(node))


def _replacements(node: ast.AST) -> Iterator[tuple[str, Callable[[], ast.AST]]]:
    """The (kind, build the replacement) pairs for one node; each builds a fresh, mutated copy."""
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in COMPARISONS:
                yield "comparison", _with(node, lambda n, i=i: n.ops.__setitem__(i, COMPARISONS[type(n.ops[i])]()))
    elif isinstance(node, ast.BoolOp):
        yield "boolean", _with(node, lambda n: setattr(n, "op", ast.Or() if isinstance(n.op, ast.And) else ast.And()))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        kind = "not removed" if isinstance(node.op, ast.Not) else "sign removed"
        yield kind, lambda: copy.deepcopy(node.operand)
    elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in ARITHMETIC:
        yield "arithmetic", _with(node, lambda n: setattr(n, "op", ARITHMETIC[type(n.op)]()))
    if isinstance(node, ast.AugAssign):
        yield "assignment", lambda: ast.Assign(targets=[copy.deepcopy(node.target)], value=copy.deepcopy(node.value))
    elif isinstance(node, ast.Constant):
        changed = _changed_constant(node.value)
        if changed is not None:
            yield "constant", lambda: ast.Constant(changed)
    elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in BUILTINS:
        yield "builtin", lambda: ast.Name(BUILTINS[node.id], ast.Load())
    elif isinstance(node, ast.Break | ast.Continue):
        yield "loop", lambda: ast.Continue() if isinstance(node, ast.Break) else ast.Break()
    elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
            and isinstance(node.targets[0], ast.Name | ast.Attribute | ast.Subscript) \
            and not (isinstance(node.value, ast.Constant) and node.value.value is None):
        yield "assignment", _with(node, lambda n: setattr(n, "value", ast.Constant(None)))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        yield "call removed", lambda: ast.Pass()
    if isinstance(node, ast.Call):
        for i, keyword in enumerate(node.keywords):
            if keyword.arg is not None:
                yield "argument removed", _with(node, lambda n, i=i: n.keywords.pop(i))


def _placed(new: ast.AST, old: ast.AST) -> ast.AST:
    ast.copy_location(new, old)
    for child in ast.walk(new):  # new nodes inside it (an operator, a target) take the same place
        if "lineno" in child._attributes and not hasattr(child, "lineno"):
            ast.copy_location(child, old)
    return new


def _with(node: ast.AST, change: Callable[[ast.AST], object]) -> Callable[[], ast.AST]:
    def build() -> ast.AST:
        new = copy.deepcopy(node)
        change(new)
        return new
    return build


def _changed_constant(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return f"XX{value}XX"
    if isinstance(value, bytes):
        return b"XX" + value + b"XX"
    return None


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_SHOWN else flat[: MAX_SHOWN - 1] + "…"
