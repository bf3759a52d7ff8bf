"""Go to definition, find references and rename, for lets, rules and quantifier variables.

A reason-code string leads to the rules and defaults that give that code. Renaming a rule
whose reason code is its id (`package.rule`, no explicit reason) also rewrites the tests that
expect that id, so the tests keep meaning the same rule.
"""

from __future__ import annotations

import re
from collections import defaultdict

from gavel.authoring.analysis import Analysis
from gavel.authoring.symbols import Occurrence, Symbol
from gavel.lang.fmt import KEYWORDS
from gavel.lang.functions import SIGNATURES
from gavel.lang.source import Span
from gavel.lang.types import ROOTS

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RENAMEABLE = ("let", "rule", "var")


class RenameError(ValueError):
    """A rename that cannot be done; the message says why, for the editor to show."""


def definitions(analysis: Analysis, file: str, line: int, column: int) -> list[Span]:
    found = analysis.index.at(file, line, column)
    return _unique(o.symbol.name_span for o in found)


def references(analysis: Analysis, file: str, line: int, column: int, include_declaration: bool = True) -> list[Span]:
    symbols = {o.symbol for o in analysis.index.at(file, line, column)}
    spans = [o.span for s in symbols for o in analysis.index.of(s)
             if include_declaration or o.kind != "declaration"]
    return _unique(sorted(spans, key=lambda s: (s.file, s.line, s.column)))


def rename_target(analysis: Analysis, file: str, line: int, column: int) -> Occurrence:
    """The occurrence a rename at this cursor would start from; RenameError if there is none."""
    found = analysis.index.at(file, line, column)
    if not found:
        raise RenameError("nothing to rename here: put the cursor on a let, a rule or a variable")
    occurrence = found[0]
    if occurrence.symbol.kind not in RENAMEABLE:
        raise RenameError("a package default has no name to rename")
    if occurrence.kind == "reason":
        raise RenameError("this is a reason code; rename the rule at its declaration")
    return occurrence


def rename(analysis: Analysis, file: str, line: int, column: int, new_name: str) -> dict[str, list[tuple[Span, str]]]:
    """The edits, by file, that rename the symbol under the cursor to `new_name`."""
    symbol = rename_target(analysis, file, line, column).symbol
    _check_name(analysis, symbol, new_name)
    edits: dict[str, list[tuple[Span, str]]] = defaultdict(list)
    for o in analysis.index.of(symbol):
        if o.kind in ("declaration", "use"):
            edits[o.span.file].append((o.span, new_name))
        elif symbol.kind == "rule" and not symbol.explicit_reason:
            edits[o.span.file].append((o.span, f"{symbol.package}.{new_name}"))
    return {f: sorted(set(e), key=lambda x: (x[0].line, x[0].column)) for f, e in edits.items()}


def _check_name(analysis: Analysis, symbol: Symbol, new_name: str) -> None:
    if not NAME.fullmatch(new_name):
        raise RenameError(f"`{new_name}` is not a name: use letters, digits and `_`, not starting with a digit")
    if new_name in KEYWORDS:
        raise RenameError(f"`{new_name}` is a keyword")
    if new_name == symbol.name:
        return
    if symbol.kind in ("let", "var") and (new_name in ROOTS or new_name in SIGNATURES):
        raise RenameError(f"`{new_name}` would hide a built-in name")
    lets = analysis.index.lets.get(symbol.package, {})
    if symbol.kind in ("let", "var") and new_name in lets:
        raise RenameError(f"package `{symbol.package}` already has a let `{new_name}`")
    if symbol.kind == "let":
        clash = [s for s in analysis.index.symbols
                 if s.kind == "var" and s.package == symbol.package and s.name == new_name]
        if clash:
            raise RenameError(f"a variable `{new_name}` at {clash[0].name_span} would hide the renamed let")
    if symbol.kind == "rule" and new_name in analysis.index.rules.get(symbol.package, {}):
        raise RenameError(f"package `{symbol.package}` already has a rule `{new_name}`")


def _unique(spans) -> list[Span]:
    return list(dict.fromkeys(spans))
