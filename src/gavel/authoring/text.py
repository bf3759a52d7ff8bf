"""Positions in source text, and a small lexer for text the parser may refuse.

The editor asks about half-typed files all the time; the parser stops at the first error,
so completion and the name spans of declarations read the raw text with this lexer instead.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from gavel.lang.source import Span

_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\\n]|\\[^\n])*"?)'
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<number>[0-9]+(?:\.[0-9]+)?[A-Za-z]*)"
    r"|(?P<newline>\n)"
    r"|(?P<space>[ \t\r\f]+)"
    r"|(?P<punct>==|!=|<=|>=|\?\?|.)"
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # string name number newline punct comment (spaces are skipped)
    text: str
    start: int  # offset in the text
    end: int

    @property
    def closed(self) -> bool:
        """A string token that has its closing quote."""
        return self.kind != "string" or (len(self.text) >= 2 and self.text.endswith('"'))


def tokens(text: str, start: int = 0, end: int | None = None, comments: bool = False) -> Iterator[Token]:
    """The tokens of `text[start:end]`, never failing: anything unknown is one `punct`.
    Comments are skipped unless asked for."""
    stop = len(text) if end is None else end
    pos = start
    while pos < stop:
        m = _TOKEN.match(text, pos, stop)
        assert m is not None  # `.` matches any character but a newline, which has its own group
        kind = m.lastgroup or "punct"
        if kind != "space" and (kind != "comment" or comments):
            yield Token(kind, m.group(), m.start(), m.end())
        pos = m.end()


class LineIndex:
    """Offsets ↔ (line, column), both counted from 1 as in `Span`."""

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def offset(self, line: int, column: int) -> int:
        if line < 1:
            return 0
        if line > len(self.starts):
            return len(self.text)
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(self.text)
        return min(start + max(column, 1) - 1, end)

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1

    def span(self, file: str, start: int, end: int) -> Span:
        line, column = self.position(start)
        end_line, end_column = self.position(end)
        return Span(file, line, column, end_line, end_column)

    def span_offsets(self, span: Span) -> tuple[int, int]:
        return self.offset(span.line, span.column), self.offset(span.end_line, span.end_column)


def contains(span: Span, line: int, column: int) -> bool:
    """Whether a cursor at (line, column) touches the span (its end included: a cursor right
    after a name is on that name)."""
    if (line, column) < (span.line, span.column):
        return False
    return (line, column) <= (span.end_line, span.end_column)


def span_size(span: Span) -> tuple[int, int]:
    return span.end_line - span.line, span.end_column - span.column
