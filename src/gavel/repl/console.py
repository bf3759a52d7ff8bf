"""The terminal side of `gavel repl`: prompt, history and Tab completion through readline when
stdin is a terminal; plain lines in, answers out when it is not (scripts, tests, pipes).

Exit status: 0, or 1 when reading from a script and a line failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TextIO

from gavel.repl.completer import Completer
from gavel.repl.session import ReplError, Reply, Session, parse_now

HISTORY_FILE = "~/.gavel_history"
HISTORY_LENGTH = 1000
# Word breaks for Tab: not `.` (a path completes as one word), not `:` (commands), not `@` (files).
DELIMITERS = " \t\n()[]{},=<>!+-*/\"'"


def run_console(args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    session = Session()
    try:
        if args.facts:
            session.facts = session.read_object("@" + shlex.quote(args.facts), "facts")
        if args.now:
            session.now = parse_now(args.now)
    except ReplError as exc:
        print(f"gavel repl: {exc}", file=sys.stderr)
        return 2
    interactive = stdin.isatty()
    failed = False
    if args.rules:
        reply = session.handle(f":load {args.rules}")
        print(reply.text, file=stdout)
        failed = not reply.ok
    if interactive:
        print("gavel repl: :help lists the commands, :quit leaves", file=stdout)
    with _line_editing(session, args.history if args.history is not None else HISTORY_FILE, interactive):
        try:
            for line in _lines(session, stdin, interactive):
                reply = _answer(session, line)
                if reply.text:
                    print(reply.text, file=stdout, flush=True)
                failed = failed or not reply.ok
                if reply.quit:
                    break
        except BrokenPipeError:  # the reader of our output went away (`| head`): nothing left to say
            sys.stdout = None
            return 0
    return 1 if failed and not interactive else 0


def _answer(session: Session, line: str) -> Reply:
    """The session's reply; a bug in it is reported and the session goes on, as a REPL should."""
    try:
        return session.handle(line)
    except Exception as exc:  # any failure must leave the console usable
        return Reply(f"internal error ({type(exc).__name__}): {exc}; please report it", ok=False)


def _lines(session: Session, stdin: TextIO, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            try:
                yield input(f"gavel({session.package})> ")
            except EOFError:
                print()
                return
            except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as shells do
                print()
                continue
        else:
            line = stdin.readline()
            if not line:
                return
            yield line


@contextmanager
def _line_editing(session: Session, history: str, interactive: bool) -> Iterator[None]:
    """readline history (kept in `history`, '' for none) and Tab completion, when interactive."""
    readline = _readline() if interactive else None
    if readline is None:
        yield
        return
    completer = Completer(session)
    matches: list[str] = []

    def complete(text: str, state: int) -> str | None:
        if state == 0:
            line, begin = readline.get_line_buffer(), readline.get_begidx()
            start, words = completer.complete(line, readline.get_endidx())
            matches[:] = [line[begin:start] + w for w in words]
        return matches[state] if state < len(matches) else None

    readline.set_completer_delims(DELIMITERS)
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    path = os.path.expanduser(history) if history else None
    if path:
        readline.set_history_length(HISTORY_LENGTH)
        with suppress(OSError):  # no history yet
            readline.read_history_file(path)
    try:
        yield
    finally:
        if path:
            try:
                readline.write_history_file(path)
            except OSError as exc:
                print(f"gavel repl: history not saved to {path}: {exc.strerror}", file=sys.stderr)


def _readline():
    # Imported here, not at the top: readline does not exist on every platform, and only a
    # terminal session needs it.
    try:
        import readline
    except ImportError:
        return None
    return readline
