"""`gavel lsp`: its arguments, and a clear word when the optional dependency is missing."""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def register(sub) -> None:
    p = sub.add_parser("lsp", help="the language server for editors (LSP over stdin/stdout)")
    p.add_argument("--stdio", action="store_true",
                   help="talk over stdin/stdout (the only transport; accepted for editors that pass it)")
    p.add_argument("--bundle-root", action="append", default=[], metavar="DIR",
                   help="a directory that is one bundle with all .rules files below it (repeatable); "
                        "by default a file's bundle is its own directory")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: pygls is the optional `lsp` extra, and only this command needs it.
    try:
        from gavel.lsp.server import serve
    except ImportError as exc:
        missing = (exc.name or "pygls").split(".")[0]
        print(f"gavel lsp: needs the lsp extra ({missing} is not installed): pip install 'gavel[lsp]'",
              file=sys.stderr)
        return EXIT_USAGE
    serve(args.bundle_root)
    return 0
