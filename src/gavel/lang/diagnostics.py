"""Diagnostics: every problem found in policy text, with a stable code and a location.

Passes collect diagnostics instead of raising at the first one; `render` prints them the way
compilers do (`file:line:col: error[E101]: message`, the source line, a caret, a help line).

Codes are stable and documented in docs/language.md:
E0xx syntax, E1xx names and types, E2xx declarations, W3xx warnings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from gavel.lang.source import Source, Span

MAX_DIAGNOSTICS = 200


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Fix:
    """A fix that tools can apply without reading the message: replace the text at `span`
    (zero-width to insert) with `replacement`. The rendered diagnostic never shows it; the
    `help` line says the same thing in words."""

    span: Span
    replacement: str
    title: str

    @staticmethod
    def replace(span: Span, replacement: str) -> Fix:
        return Fix(span, replacement, f"change to `{replacement}`")


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    code: str
    message: str
    span: Span
    help: str | None = None
    fixes: tuple[Fix, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple:
        s = self.span
        return (s.file, s.line, s.column, self.severity is not Severity.ERROR, self.code)

    def headline(self) -> str:
        return f"{self.span}: {self.severity.value}[{self.code}]: {self.message}"

    def to_dict(self) -> dict:
        out = {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
        }
        if self.help:
            out["help"] = self.help
        return out


def error(code: str, message: str, span: Span, help: str | None = None, fixes: tuple[Fix, ...] = ()) -> Diagnostic:
    return Diagnostic(Severity.ERROR, code, message, span, help, fixes)


def warning(code: str, message: str, span: Span, help: str | None = None,
            fixes: tuple[Fix, ...] = ()) -> Diagnostic:
    return Diagnostic(Severity.WARNING, code, message, span, help, fixes)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    unique = {(d.sort_key(), d.message): d for d in diags}
    ordered = [unique[k] for k in sorted(unique)]
    return tuple(ordered[:MAX_DIAGNOSTICS])


def has_errors(diags: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diags)


def render(diag: Diagnostic, sources: Mapping[str, Source] | None = None) -> str:
    """Render one diagnostic with its source line and a caret under the span."""
    lines = [diag.headline()]
    source = (sources or {}).get(diag.span.file)
    if source is not None and diag.span.line > 0:
        text = source.line_text(diag.span.line).expandtabs(1)
        gutter = str(diag.span.line)
        pad = " " * len(gutter)
        start = max(diag.span.column, 1)
        if diag.span.end_line == diag.span.line and diag.span.end_column > start:
            width = diag.span.end_column - start
        else:
            width = max(len(text) - start + 1, 1)
        lines.append(f"{pad} |")
        lines.append(f"{gutter} | {text}")
        lines.append(f"{pad} | {' ' * (start - 1)}{'^' * width}")
    if diag.help:
        lines.append(f"  = help: {diag.help}")
    return "\n".join(lines)


def render_all(diags: Iterable[Diagnostic], sources: Mapping[str, Source] | None = None) -> str:
    return "\n\n".join(render(d, sources) for d in diags)


@dataclass
class DiagnosticSink:
    """Collects diagnostics during one pass."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span, help: str | None = None,
              fixes: tuple[Fix, ...] = ()) -> None:
        self.items.append(error(code, message, span, help, fixes))

    def warning(self, code: str, message: str, span: Span, help: str | None = None,
                fixes: tuple[Fix, ...] = ()) -> None:
        self.items.append(warning(code, message, span, help, fixes))

    @property
    def has_errors(self) -> bool:
        return has_errors(self.items)


def segment_fix(span: Span, chain: tuple[str, ...], index: int, replacement: str) -> tuple[Fix, ...]:
    """Replace segment `index` of the dotted path `chain` written at `span`.

    Only when the span holds exactly the path, on one line (no spaces, parentheses or comments
    inside it): otherwise the segment's column is not known, and there is no fix."""
    text = ".".join(chain)
    if span.line != span.end_line or span.end_column - span.column != len(text):
        return ()
    start = span.column + len(".".join(chain[:index])) + (1 if index else 0)
    segment = Span(span.file, span.line, start, span.line, start + len(chain[index]))
    return (Fix(segment, replacement, f"change to `{'.'.join((*chain[:index], replacement))}`"),)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate by edit distance, if it is close enough to be a likely typo."""
    best: tuple[int, str] | None = None
    for cand in sorted(set(candidates)):
        d = _levenshtein(name, cand)
        if best is None or d < best[0]:
            best = (d, cand)
    if best is None:
        return None
    limit = max(1, min(3, len(name) // 3 + 1))
    return best[1] if best[0] <= limit else None


def _levenshtein(a: str, b: str) -> int:
    if a == b:
        return 0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
