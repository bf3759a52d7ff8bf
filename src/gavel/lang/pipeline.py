"""The compiler as an ordered table of passes: sources → parse → check → lower → analyze.

Each pass is a pure function; `compile_sources` runs them in order and stops after the first
pass that reports an error, so later passes only ever see well-formed input. Tools can ask for
the program after any pass (`stop_after`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gavel.lang import ir
from gavel.lang import syntax as ast
from gavel.lang.analysis import analyze
from gavel.lang.check import check_modules
from gavel.lang.diagnostics import Diagnostic, has_errors, sort_diagnostics
from gavel.lang.lower import lower_program
from gavel.lang.parse import parse_source
from gavel.lang.source import Source

PASSES = ("parse", "check", "lower", "analyze")


@dataclass(frozen=True)
class Compilation:
    sources: Mapping[str, Source]
    modules: tuple[ast.Module, ...]
    program: ir.ProgramIR | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.program is not None and not has_errors(self.diagnostics)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)


def parse_all(sources: Mapping[str, Source]) -> tuple[tuple[ast.Module, ...], list[Diagnostic]]:
    modules, diags = [], []
    for path in sorted(sources):
        module, errs = parse_source(sources[path])
        diags.extend(errs)
        if module is not None:
            modules.append(module)
    return tuple(modules), diags


def compile_sources(texts: Mapping[str, str], stop_after: str = "analyze") -> Compilation:
    """Run the passes over `{path: text}`; never raises for bad policy text."""
    sources = {path: Source(path, text) for path, text in texts.items()}
    modules, diags = parse_all(sources)
    if not sources:
        return Compilation(sources, (), ir.ProgramIR((), ()), ())
    if has_errors(diags) or stop_after == "parse":
        return Compilation(sources, modules, None, sort_diagnostics(diags))
    program, found = check_modules(modules)
    diags.extend(found)
    if has_errors(diags) or stop_after == "check":
        return Compilation(sources, modules, None if has_errors(diags) else program, sort_diagnostics(diags))
    program, found = lower_program(program)
    diags.extend(found)
    if has_errors(diags) or stop_after == "lower":
        return Compilation(sources, modules, None if has_errors(diags) else program, sort_diagnostics(diags))
    diags.extend(analyze(program))
    return Compilation(sources, modules, program, sort_diagnostics(diags))
