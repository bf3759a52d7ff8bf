"""What Tab offers in the REPL: commands, files after `:load` and `@`, packages after
`:package`, and in an expression what the editor would offer at that point of a rule
(`gavel.authoring.completion`): paths, data keys, the package's lets, built-ins."""

from __future__ import annotations

import os
from pathlib import Path

from gavel.authoring.completion import complete
from gavel.repl.session import COMMANDS, HIDDEN_FILE, HIDDEN_LET, Session


class Completer:
    def __init__(self, session: Session):
        self.session = session

    def complete(self, line: str, cursor: int | None = None) -> tuple[int, list[str]]:
        """(where the completed word starts in `line`, the words that may replace it)."""
        cursor = len(line) if cursor is None else cursor
        before = line[:cursor]
        if before.startswith(":"):
            name, space, arg = before.partition(" ")
            if not space:
                return 0, [c for c in COMMANDS if c.startswith(name)]
            start = len(name) + 1 + (len(arg) - len(arg.lstrip()))
            arg = arg.lstrip()
            if name == ":load":
                return start, _paths(arg)
            if name == ":package" and self.session.analysis is not None:
                return start, [p for p in self.session.analysis.packages() if p.startswith(arg)]
            if arg.startswith("@"):
                return start, ["@" + p for p in _paths(arg[1:])]
            return start, []
        prefix = self.session.wrapper()
        text = prefix + before
        lines = text.split("\n")
        found = complete(self.session.analysis, HIDDEN_FILE, text, len(lines), len(lines[-1]) + 1)
        start = cursor - (len(lines[-1]) + 1 - found.start_column)
        typed = line[start:cursor]
        return start, sorted({c.label for c in found.items if c.label.startswith(typed) and c.label != HIDDEN_LET})


def _paths(typed: str) -> list[str]:
    """Files and directories that complete `typed` (directories end in `/`)."""
    expanded = os.path.expanduser(typed)
    folder, partial = os.path.split(expanded)
    try:
        entries = sorted(os.listdir(folder or "."))
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.startswith(partial) or (entry.startswith(".") and not partial.startswith(".")):
            continue
        shown = os.path.join(os.path.split(typed)[0], entry)
        out.append(shown + "/" if Path(folder or ".", entry).is_dir() else shown)
    return out
