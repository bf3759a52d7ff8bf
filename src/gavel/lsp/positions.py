"""Spans (lines and columns from 1, columns in characters) ↔ LSP positions (from 0, columns in
the code units the client and server agreed on: UTF-16 unless the client offers another)."""

from __future__ import annotations

from collections.abc import Sequence

from lsprotocol import types

from gavel.lang.source import Span


class Codec:
    def __init__(self, encoding: str | None):
        self.encoding = str(encoding or types.PositionEncodingKind.Utf16.value)

    def units(self, text: str) -> int:
        if self.encoding == types.PositionEncodingKind.Utf8.value:
            return len(text.encode("utf-8", "surrogatepass"))
        if self.encoding == types.PositionEncodingKind.Utf32.value:
            return len(text)
        return len(text.encode("utf-16-le", "surrogatepass")) // 2

    def position(self, lines: Sequence[str], line: int, column: int) -> types.Position:
        """A span's (line, column) as an LSP position; past the end is clamped to the end."""
        index = max(line - 1, 0)
        if index >= len(lines):
            return types.Position(line=max(len(lines) - 1, 0), character=self.units(lines[-1]) if lines else 0)
        text = lines[index]
        return types.Position(line=index, character=self.units(text[: max(column - 1, 0)]))

    def range(self, lines: Sequence[str], span: Span) -> types.Range:
        return types.Range(start=self.position(lines, span.line, span.column),
                           end=self.position(lines, span.end_line, span.end_column))

    def column(self, lines: Sequence[str], position: types.Position) -> tuple[int, int]:
        """An LSP position as a span's (line, column)."""
        if position.line >= len(lines):
            return len(lines) + 1, 1
        text = lines[position.line]
        used = 0
        for i, ch in enumerate(text):
            if used >= position.character:
                return position.line + 1, i + 1
            used += self.units(ch)
        return position.line + 1, len(text) + 1


def split_lines(text: str) -> list[str]:
    """Lines as both Lark and LSP count them: split at `\\n` only."""
    return text.split("\n")
