"""Source text and locations.

A `Span` is data, not identity: AST nodes carry one with `compare=False`, so two trees that
differ only in layout compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A region of one source file; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    @staticmethod
    def point(file: str, line: int, column: int) -> Span:
        return Span(file, line, column, line, column + 1)


NO_SPAN = Span("<none>", 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Source:
    """One `.rules` file: its path (as shown in diagnostics) and its text."""

    path: str
    text: str

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        if 1 <= line <= len(lines):
            return lines[line - 1]
        return ""
