"""`gavel repl`: its arguments."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("repl", help="evaluate expressions and requests against a bundle, interactively")
    p.add_argument("rules", nargs="?", metavar="PATH", help="the bundle: a rules directory or file")
    p.add_argument("--facts", metavar="FILE", help="facts JSON")
    p.add_argument("--now", metavar="ISO", help="decision time (default: the clock, read at each evaluation)")
    p.add_argument("--history", metavar="FILE", help="history file (default: ~/.gavel_history; '' for none)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: the console pulls in the compiler and the engine, about 0.5 s that every
    # other `gavel` command would pay at start-up.
    from gavel.repl.console import run_console

    return run_console(args)
