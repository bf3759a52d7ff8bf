"""`gavel` command line. Exit codes: 0 ok, 1 policy or test errors, 2 usage errors."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from gavel.lang.diagnostics import render, sort_diagnostics

EXIT_OK, EXIT_POLICY, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _load(paths: Sequence[str]):
    from gavel.api import Engine
    from gavel.sources import SourceError, read_rule_files

    try:
        if not read_rule_files(paths):
            raise UsageError(f"no .rules files in {' '.join(paths)}")
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    return Engine.load(*paths)


def _print_policy_error(exc) -> None:
    sources = getattr(exc, "sources", None)
    for d in exc.diagnostics:
        print(render(d, sources), file=sys.stderr)
        print(file=sys.stderr)
    errors = sum(d.is_error for d in exc.diagnostics)
    print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from gavel.lang.data import DataFile, is_data_name
    from gavel.lang.pipeline import compile_sources
    from gavel.sources import SourceError, read_bundle_files

    try:
        found = read_bundle_files(args.paths)
    except SourceError as exc:
        if exc.code is None:  # a path that does not exist is a usage error
            raise UsageError(str(exc)) from None
        return _unreadable(exc, args.format)  # too large, not UTF-8: a diagnostic like any other
    files = [f for f in found if not is_data_name(f.name)]
    data = [DataFile(f.display, f.name, f.text) for f in found if is_data_name(f.name)]
    if not files:
        raise UsageError(f"no .rules files in {' '.join(args.paths)}")
    # With a directory, its data files are known and `data.*` is checked against them.
    comp = compile_sources({f.display: f.text for f in files}, data=data if data else None)
    diags = sort_diagnostics(comp.diagnostics)
    if args.format == "json":
        print(json.dumps({"ok": comp.ok, "diagnostics": [d.to_dict() for d in diags]}, indent=2))
    else:
        for d in diags:
            print(render(d, comp.all_sources))
            print()
        errors, warnings = len(comp.errors), len(comp.warnings)
        rules = sum(len(p.rules) for p in comp.program.packages) if comp.program else 0
        status = "ok" if comp.ok else "failed"
        print(f"{status}: {_count(len(files), 'file')}, {_count(rules, 'rule')}, {_count(errors, 'error')}, "
              f"{_count(warnings, 'warning')}")
    return EXIT_OK if comp.ok else EXIT_POLICY


def _unreadable(exc, fmt: str) -> int:
    """`gavel check` on a file it cannot read as text: one error at its `file:line:col`, exit 1."""
    from gavel.lang.diagnostics import error
    from gavel.lang.source import Span

    d = error(exc.code, exc.message, Span.point(exc.path, exc.line, exc.column))
    if fmt == "json":
        print(json.dumps({"ok": False, "diagnostics": [d.to_dict()]}, indent=2))
    else:
        print(render(d))
        print()
        print("failed: 1 unreadable file, 1 error")
    return EXIT_POLICY


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def cmd_fmt(args: argparse.Namespace) -> int:
    from gavel.lang.fmt import format_source
    from gavel.lang.source import Source
    from gavel.sources import SourceError, read_rule_files

    try:
        files = read_rule_files(args.paths)
    except SourceError as exc:
        raise UsageError(str(exc)) from None
    changed, failed = [], False
    for f in files:
        formatted, diags = format_source(Source(f.display, f.text))
        if formatted is None:
            failed = True
            for d in diags:
                print(render(d, {f.display: Source(f.display, f.text)}), file=sys.stderr)
            continue
        if formatted != f.text:
            changed.append(f.display)
            if not args.check:
                Path(f.display).write_text(formatted, encoding="utf-8")
    for path in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {path}")
    if failed:
        return EXIT_POLICY
    if args.check and changed:
        return EXIT_POLICY
    if not changed:
        print(f"{_count(len(files), 'file')} already formatted")
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from gavel.api import PolicyError
    from gavel.engine.testing import run_tests

    try:
        engine = _load(args.paths)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_POLICY
    report = run_tests(engine)
    for r in report.results:
        where = f"{r.test.span.file}:{r.test.span.line}"
        if r.passed:
            if args.verbose:
                print(f"PASS  {where}  {r.test.name}")
            continue
        print(f"FAIL  {where}  {r.test.name}")
        print(f"      expected {r.expected}")
        print(f"      got      {r.actual}")
        print(f"      explain  {r.decision.explain['summary']}")
    if args.coverage:
        total = len(engine.policy.rules) + len(engine.policy.defaults) + len(engine.policy.risks)
        covered = total - len(report.uncovered)
        print(f"coverage: {covered}/{total} rules (risk rules and defaults included) matched by at least one test")
        for rule in report.uncovered:
            print(f"  not covered: {rule}")
    print(f"{report.passed} passed, {report.failed} failed")
    return EXIT_OK if report.failed == 0 and report.results else EXIT_POLICY


def _read_json(path: str, what: str):
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        value = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} {path} must be a JSON object")
    return value


def cmd_eval(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gavel.api import PolicyError
    from gavel.lang.check import parse_time

    request = _read_json(args.input, "input")
    facts = _read_json(args.facts, "facts") if args.facts else None
    try:
        now = parse_time(args.now) if args.now else datetime.now(UTC)
    except ValueError:
        raise UsageError(
            f"--now must be an ISO-8601 time with a zone, e.g. 2026-11-21T10:00:00Z; got {args.now}") from None
    try:
        engine = _load([args.rules])
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_POLICY
    decision = engine.decide_at(request, facts, now)
    print(json.dumps(decision.to_dict(), indent=2, sort_keys=True, ensure_ascii=False))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gavel", description="Gavel: a policy decision point for AI agents")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="check .rules files: errors and warnings with file:line:col")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("fmt", help="format .rules files canonically (in place)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--check", action="store_true", help="only report files that would change (exit 1)")
    p.set_defaults(run=cmd_fmt)

    p = sub.add_parser("test", help="run the test blocks in .rules files")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--coverage", action="store_true", help="list rules that no test matched")
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing tests")
    p.set_defaults(run=cmd_test)

    p = sub.add_parser("eval", help="decide one request and print the decision as JSON")
    p.add_argument("--rules", required=True, metavar="PATH")
    p.add_argument("--input", required=True, metavar="FILE", help="request JSON, or - for stdin")
    p.add_argument("--facts", metavar="FILE", help="facts JSON")
    p.add_argument("--now", metavar="ISO", help="decision time (default: now)")
    p.set_defaults(run=cmd_eval)

    from gavel import cli_bundle, cli_service, cli_verify
    from gavel.lsp import cli as lsp_cli
    from gavel.repl import cli as repl_cli

    cli_service.register(sub)
    cli_verify.register(sub)
    cli_bundle.register(sub)
    lsp_cli.register(sub)
    repl_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"gavel {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
