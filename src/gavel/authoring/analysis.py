"""One bundle, analysed for an editor: the compilation `gavel check` would report, the checked
program (types), and the symbol index.

The diagnostics are exactly the pipeline's. The types come from running the checker on every
file that parses, even when another file does not or the bundle has errors, so an editor
still knows what `action.amount` is while some other line is broken.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gavel.authoring.symbols import SymbolIndex, build_index
from gavel.lang import ir
from gavel.lang import syntax as ast
from gavel.lang.check import check_modules, children
from gavel.lang.data import BundleData, DataFile
from gavel.lang.pipeline import Compilation, compile_sources
from gavel.lang.types import DYNAMIC, Type


@dataclass(frozen=True)
class Analysis:
    compilation: Compilation
    checked: ir.ProgramIR | None
    index: SymbolIndex
    let_types: Mapping[tuple[str, str], Type] = field(default_factory=dict)  # (package, let) → type
    var_types: Mapping[tuple[str, int, int], Type] = field(default_factory=dict)  # quantifier start → element type

    @property
    def data(self) -> BundleData | None:
        return self.compilation.data

    def module(self, path: str) -> ast.Module | None:
        return next((m for m in self.compilation.modules if m.path == path), None)

    def package_of(self, path: str) -> str | None:
        module = self.module(path)
        return module.package.name if module is not None else None

    def packages(self) -> list[str]:
        return sorted({m.package.name for m in self.compilation.modules})


def analyze_bundle(texts: Mapping[str, str], data: Sequence[DataFile] | None = None) -> Analysis:
    """Compile `{path: text}` (and the data files) as `gavel check` does, and index it."""
    comp = compile_sources(texts, data=data)
    schema = comp.data.schema if comp.data is not None else None
    checked = check_modules(comp.modules, schema)[0] if comp.modules else None
    let_types: dict[tuple[str, str], Type] = {}
    var_types: dict[tuple[str, int, int], Type] = {}
    if checked is not None:
        for pkg in checked.packages:
            for name, value in pkg.lets:
                let_types[(pkg.name, name)] = value.type
        for e in _all_expressions(checked):
            for q in _quantifiers(e):
                var_types[(q.span.file, q.span.line, q.span.column)] = q.collection.type.elem or DYNAMIC
    return Analysis(comp, checked, build_index(comp.modules, comp.sources), let_types, var_types)


def _all_expressions(program: ir.ProgramIR) -> Iterator[ir.IExpr]:
    for pkg in program.packages:
        yield from pkg.scope
        yield from (v for _, v in pkg.lets)
        for rule in pkg.rules:
            yield from rule.when
            yield from rule.unless
            if rule.obligations is not None:
                yield rule.obligations
        for risk in pkg.risks:
            yield from risk.when


def _quantifiers(e: ir.IExpr) -> Iterator[ir.Quant]:
    stack = [e]
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Quant):
            yield node
        stack.extend(children(node))
