"""`gavel verify PACK [--jwks FILE] [--json]`: check an evidence pack offline.

Needs nothing but the pack and the ledger's public keys (a JWKS). Prints one line per check and
a verdict. Exit codes: 0 every check holds, 1 a check failed, 2 an input file is unreadable or
invalid. Without `--jwks` the JWKS embedded in the pack (if any) is used, with a warning: keys
that travel with the evidence show it is intact, not who made it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from gavel.ledger.verify import Check, all_ok, as_jwks, load_jwks, load_pack, verify_pack

EXIT_VERIFIED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

EMBEDDED_KEYS_WARNING = (
    "no --jwks given: checking against the keys embedded in the pack itself, which were not "
    "independently obtained; this shows the pack is intact, not who issued it"
)


class _BadInput(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `verify` command to the `gavel` subcommands."""
    parser = sub.add_parser("verify", help="check an evidence pack offline: signature, events, Merkle proofs")
    _add_arguments(parser)
    parser.set_defaults(run=run)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gavel verify` with `argv` (the arguments after `verify`)."""
    parser = argparse.ArgumentParser(prog="gavel verify", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Verify the pack named in `args` and print the result; return the exit code."""
    try:
        pack = _read(args.pack, "pack", load_pack)
        if args.jwks is not None:
            jwks, embedded = _read(args.jwks, "JWKS", load_jwks), False
        elif "jwks" in pack:
            jwks, embedded = _embedded_jwks(pack), True
        else:
            raise _BadInput(
                "no --jwks given and the pack embeds no keys; pass the ledger's public keys with --jwks FILE"
            )
    except _BadInput as exc:
        print(f"gavel verify: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    checks = verify_pack(pack, jwks)
    verified = all_ok(checks)
    keys_source = "keys embedded in the pack" if embedded else f"keys from {args.jwks}"
    if args.json:
        _print_json(checks, verified, embedded, keys_source)
    else:
        _print_text(checks, verified, embedded, keys_source)
    return EXIT_VERIFIED if verified else EXIT_FAILED


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pack", metavar="PACK", help="the evidence pack (JSON)")
    parser.add_argument("--jwks", metavar="FILE", help="the ledger's public keys (JWKS), obtained independently")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def _read(path: str, what: str, parse):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _BadInput(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _BadInput(f"{what} {path} is not UTF-8 text") from None
    try:
        return parse(text)
    except ValueError as exc:
        raise _BadInput(f"{what} {path}: {exc}") from None


def _embedded_jwks(pack: dict) -> dict:
    try:
        return as_jwks(pack["jwks"])
    except ValueError as exc:
        raise _BadInput(f"the JWKS embedded in the pack is invalid: {exc}") from None


def _print_text(checks: list[Check], verified: bool, embedded: bool, keys_source: str) -> None:
    if embedded:
        print(f"WARN keys: {EMBEDDED_KEYS_WARNING}")
    for check in checks:
        if check.ok:
            print(f"ok   {check.name} {check.detail}")
        else:
            print(f"FAIL {check.name}: {check.detail}")
    failed = [check.name for check in checks if not check.ok]
    if not verified:
        print(f"NOT VERIFIED: {len(failed)} of {len(checks)} checks failed ({', '.join(failed)}); {keys_source}")
    elif embedded:
        print(
            f"VERIFIED, but only against {keys_source}, which were not independently obtained: "
            f"all {len(checks)} checks hold"
        )
    else:
        print(f"VERIFIED: all {len(checks)} checks hold ({keys_source})")


def _print_json(checks: list[Check], verified: bool, embedded: bool, keys_source: str) -> None:
    report = {
        "verified": verified,
        "keys": keys_source,
        "keys_independent": not embedded,
        "warning": EMBEDDED_KEYS_WARNING if embedded else None,
        "checks": [{"name": check.name, "ok": check.ok, "detail": check.detail} for check in checks],
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
