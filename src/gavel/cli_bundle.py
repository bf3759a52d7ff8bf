"""`gavel bundle build|inspect`: make a policy bundle archive from a rules directory, and show one.

    gavel bundle build DIR -o FILE [--version LABEL] [--author NAME] [--sign-key FILE]
    gavel bundle inspect FILE [--json] [--jwks FILE]

Exit codes: 0 ok; 1 the rules do not compile, the archive is corrupt, or (with `--jwks`) its
signature does not check out; 2 usage errors (bad arguments, unreadable inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bundle` command (build, inspect) to the `gavel` subcommands."""
    parser = sub.add_parser("bundle", help="build or inspect a policy bundle (.tar.gz)")
    _add_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `gavel bundle` with `argv` (the arguments after `bundle`)."""
    parser = argparse.ArgumentParser(prog="gavel bundle", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return args.run(args)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    p = actions.add_parser("build", help="compile a rules directory and pack it as a bundle")
    p.add_argument("directory", metavar="DIR", help="the rules directory (.rules files, data/**/*.json)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the .tar.gz")
    p.add_argument("--version", dest="label", metavar="LABEL",
                   help="version label (default: the git short commit, else a UTC timestamp)")
    p.add_argument("--author", metavar="NAME", help="author (default: $USER, else git user.name)")
    p.add_argument("--sign-key", metavar="FILE",
                   help='sign with this Ed25519 key: JSON {"seed": b64url} or a signing-keys.json')
    p.set_defaults(run=_guarded(run_build))
    p = actions.add_parser("inspect", help="show a bundle's manifest and signature")
    p.add_argument("archive", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--jwks", metavar="FILE", help="check the signature against these public keys (JWKS)")
    p.set_defaults(run=_guarded(run_inspect))


def _guarded(command):
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _Usage as exc:
            print(f"gavel bundle {args.bundle_command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return run


# ---------------------------------------------------------------- build

def run_build(args: argparse.Namespace) -> int:
    from gavel.bundles import BundleError, build_archive, git_user_name, source_revision

    directory = Path(args.directory)
    if not directory.is_dir():
        raise _Usage(f"{args.directory}: not a directory")
    key = _signing_key(args.sign_key) if args.sign_key else None
    output = Path(args.output)
    if not output.parent.is_dir():
        raise _Usage(f"cannot write {args.output}: no directory {output.parent}")
    now = datetime.now(UTC).replace(microsecond=0)
    revision = source_revision(directory)
    label = args.label or (revision[:12] if revision else now.strftime("%Y%m%dT%H%M%SZ"))
    author = args.author or os.environ.get("USER") or git_user_name(directory) or "unknown"
    try:
        archive = build_archive(directory, version=label, author=author, now=now, source_revision=revision,
                                sign_with=key)
    except BundleError as exc:
        print(exc.message, file=sys.stderr)
        errors = sum(d.is_error for d in exc.diagnostics)
        if errors:
            print(f"\n{errors} error{'s' if errors != 1 else ''}: no bundle written", file=sys.stderr)
        return EXIT_FAILED
    try:
        output.write_bytes(archive)
    except OSError as exc:
        raise _Usage(f"cannot write {args.output}: {exc.strerror or exc}") from None
    from gavel.bundles import read_archive

    bundle = read_archive(archive)
    print(bundle.bundle_hash)
    signed = f", signed by {key.kid}" if key is not None else ""
    print(f"wrote {args.output}: {len(bundle.files)} files, version {label}{signed}", file=sys.stderr)
    return EXIT_OK


def _signing_key(path: str):
    from gavel.crypto.keys import Ed25519KeyPair, b64url_decode

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Usage(f"cannot read sign key {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise _Usage(f"sign key {path} is not JSON") from None
    holder = doc.get("active", doc) if isinstance(doc, dict) else None
    seed = holder.get("seed") if isinstance(holder, dict) else None
    try:
        return Ed25519KeyPair.from_seed(b64url_decode(seed))
    except (TypeError, ValueError):
        raise _Usage(f'sign key {path} must be {{"seed": "<base64url of 32 bytes>"}} or a signing-keys.json') \
            from None


# ---------------------------------------------------------------- inspect

def run_inspect(args: argparse.Namespace) -> int:
    from gavel.bundles import BundleError, read_archive, signature_status

    try:
        data = Path(args.archive).read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {args.archive}: {exc.strerror or exc}") from None
    keys = _public_keys(args.jwks) if args.jwks else None
    try:
        bundle = read_archive(data)
    except BundleError as exc:
        print(f"gavel bundle inspect: {args.archive}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    kid = bundle.signature["kid"] if bundle.signature else None
    if keys is not None:
        status = signature_status(bundle, keys.get)
    else:
        status = "unsigned" if bundle.signature is None else "not_checked"
    if args.json:
        print(json.dumps({"manifest": bundle.manifest, "signature": {"status": status, "kid": kid}},
                         indent=2, ensure_ascii=False))
    else:
        _print_manifest(bundle.manifest, status, kid)
    return EXIT_FAILED if keys is not None and status != "valid" else EXIT_OK


def _public_keys(path: str) -> dict:
    from gavel.crypto.keys import PublicKey
    from gavel.ledger.verify import load_jwks

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise _Usage(f"cannot read JWKS {path}: {exc.strerror or exc}") from None
    try:
        keys = [PublicKey.from_jwk(k) for k in load_jwks(text)["keys"]]
    except ValueError as exc:
        raise _Usage(f"JWKS {path}: {exc}") from None
    return {k.kid: k for k in keys}


_STATUS_TEXT = {
    "valid": "valid, signed by {kid}",
    "invalid": "INVALID: the signature by {kid} does not match this manifest",
    "unknown_key": "signed by {kid}, which is not in the given keys",
    "unsigned": "unsigned",
    "not_checked": "signed by {kid}, not checked (pass --jwks FILE to check it)",
}


def _print_manifest(m: dict, status: str, kid: str | None) -> None:
    files = m["files"]
    total = sum(f["bytes"] for f in files)
    rows = [("bundle", m["bundle_hash"]), ("version", m["version"]), ("created", m["created_at"] or "-"),
            ("author", m["author"] or "-"), ("revision", m["source_revision"] or "-"),
            ("signature", _STATUS_TEXT[status].format(kid=kid)),
            ("files", f"{len(files)} ({total} bytes)")]
    for label, value in rows:
        print(f"{label:<10} {value}")
    width = max((len(str(f["bytes"])) for f in files), default=1)
    for f in files:
        print(f"  {f['bytes']:>{width}}  {f['name']}")


if __name__ == "__main__":
    sys.exit(main())
