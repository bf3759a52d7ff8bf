"""The compiler as an ordered table of passes: sources → parse → check → lower → analyze.

Data files (`lang.data`), when given, are parsed with the sources: their names type `data.*`
paths in check, and their values become constants in lower.

Each pass is a pure function; `compile_sources` runs them in order and stops after the first
pass that reports an error, so later passes only ever see well-formed input. Tools can ask for
the program after any pass (`stop_after`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gavel.lang import ir
from gavel.lang import syntax as ast
from gavel.lang.analysis import analyze
from gavel.lang.check import check_modules
from gavel.lang.data import BundleData, DataFile, load_data
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
    data: BundleData | None = None  # None: the data files were not given (their names are not checked)

    @property
    def ok(self) -> bool:
        return self.program is not None and not has_errors(self.diagnostics)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)

    @property
    def all_sources(self) -> Mapping[str, Source]:
        """The rule sources and the data files: what diagnostics may point into."""
        return {**self.data.sources, **self.sources} if self.data is not None else self.sources


def parse_all(sources: Mapping[str, Source]) -> tuple[tuple[ast.Module, ...], list[Diagnostic]]:
    modules, diags = [], []
    for path in sorted(sources):
        module, errs = parse_source(sources[path])
        diags.extend(errs)
        if module is not None:
            modules.append(module)
    return tuple(modules), diags


def compile_sources(texts: Mapping[str, str], stop_after: str = "analyze",
                    data: Sequence[DataFile] | None = None) -> Compilation:
    """Run the passes over `{path: text}` and the bundle's data files; never raises for bad policy text.

    `data=None` means the data files are unknown (e.g. checking rule files alone): `data.*` paths
    are then typed `dynamic` unchecked and are not folded.
    """
    sources = {path: Source(path, text) for path, text in texts.items()}
    modules, diags = parse_all(sources)
    bundle_data = None
    if data is not None:
        bundle_data, found = load_data(data)
        diags.extend(found)
    if not sources and not has_errors(diags):
        return Compilation(sources, (), ir.ProgramIR((), ()), sort_diagnostics(diags), bundle_data)
    if has_errors(diags) or stop_after == "parse":
        return Compilation(sources, modules, None, sort_diagnostics(diags), bundle_data)
    program, found = check_modules(modules, bundle_data.schema if bundle_data is not None else None)
    diags.extend(found)
    if has_errors(diags) or stop_after == "check":
        return Compilation(sources, modules, None if has_errors(diags) else program, sort_diagnostics(diags),
                           bundle_data)
    program, found = lower_program(program, bundle_data.values if bundle_data is not None else None)
    diags.extend(found)
    if has_errors(diags) or stop_after == "lower":
        return Compilation(sources, modules, None if has_errors(diags) else program, sort_diagnostics(diags),
                           bundle_data)
    diags.extend(analyze(program))
    return Compilation(sources, modules, program, sort_diagnostics(diags), bundle_data)
