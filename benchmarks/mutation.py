"""Mutation testing of the security-critical core: does each file's own test selection notice a fault?

    .venv/bin/python benchmarks/mutation.py                        # every file, one mutant at a time
    .venv/bin/python benchmarks/mutation.py --files merkle,chain   # some of them
    .venv/bin/python benchmarks/mutation.py --list --files jws     # the mutants, without running
    .venv/bin/python benchmarks/mutation.py --files jws --mutant 17 --verbose   # one mutant, pytest's output
    .venv/bin/python benchmarks/mutation.py --json /tmp/mutation.json

For each file in TARGETS it makes every mutant of `mutants.py` (a changed comparison, boolean,
constant, …), runs the file's own tests against each in a fresh `pytest` process, and prints a
score per file (killed / mutants) and every survivor with its line and change. A mutant is
killed when the tests fail (or crash, or run past a timeout); it survives when they pass.

The source tree is never written: the child process puts a finder in front of `sys.meta_path`
that hands Python the mutant's compiled code for that one module, and checks at the end that
the tests really imported it. Before the mutants, the same child runs the unmutated code, which
must pass, and its time sets the timeout (3 × baseline + 10 s). Hypothesis draws the same
examples every run (`CI=1`, as in CI), and PostgreSQL is left out (no GAVEL_TEST_DATABASE_URL).

CPU-heavy: files run one after another, one mutant at a time unless `--jobs N`. Not run in CI.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import marshal
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mutants import Mutant, list_mutants, mutate

ROOT = Path(__file__).resolve().parent.parent
NOT_IMPORTED = 97  # the child's exit code when the tests never imported the mutated module
PYTEST_ARGS = ("-x", "-q", "--no-header", "-p", "no:cacheprovider", "--tb=short")


@dataclass(frozen=True)
class Target:
    """A file to mutate, the module it is, and the tests that should notice (pytest arguments: fast ones)."""

    path: str
    module: str
    tests: tuple[str, ...]
    functions: frozenset[str] | None = None  # only mutate inside these functions


TARGETS = {
    "combine": Target("src/gavel/engine/combine.py", "gavel.engine.combine",
                      ("tests/engine/test_semantics.py", "tests/engine/test_explain_golden.py")),
    "evaluate": Target("src/gavel/engine/evaluate.py", "gavel.engine.evaluate",
                       ("tests/engine/test_evaluate.py", "tests/engine/test_semantics.py",
                        "tests/engine/test_explain_golden.py", "tests/engine/test_tree_oracle.py",
                        "-k", "not random_rule_sets")),  # that one takes 10 s
    "jws": Target("src/gavel/crypto/jws.py", "gavel.crypto.jws", ("tests/crypto/test_jws.py",)),
    "chain": Target("src/gavel/ledger/chain.py", "gavel.ledger.chain", ("tests/ledger/test_chain.py",)),
    "merkle": Target("src/gavel/ledger/merkle.py", "gavel.ledger.merkle", ("tests/ledger/test_merkle.py",)),
    "tokens": Target("src/gavel/app/tokens.py", "gavel.app.tokens", ("tests/app/test_tokens.py",),
                     functions=frozenset({"verify", "consume", "revoke"})),
}


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed, timeout, survived
    seconds: float


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--mutant", type=int, action="append", help="run only this mutant number (repeatable)")
    p.add_argument("--tests", metavar="ARGS", help="pytest arguments to run instead of the file's own selection, "
                                                  "e.g. \"tests/x.py -k 'not slow'\"")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1: the machine is shared)")
    p.add_argument("--json", metavar="FILE", help="also write every outcome as JSON")
    p.add_argument("--verbose", action="store_true", help="a line per mutant, and pytest's output of survivors")
    p.add_argument("--run-mutant", nargs=3, metavar=("CODE", "MODULE", "PATH"), help=argparse.SUPPRESS)
    args, rest = p.parse_known_args(argv)
    if args.run_mutant:
        return _run_mutant(*args.run_mutant, pytest_args=[a for a in rest if a != "--"])
    names = [n.strip() for n in args.files.split(",") if n.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown file {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    if args.list:
        for name in names:
            target = TARGETS[name]
            for m in list_mutants((ROOT / target.path).read_text("utf-8"), target.functions):
                print(f"{name} #{m.number} {m.describe()}")
        return 0
    results = {}
    for name in names:
        target = replace(TARGETS[name], tests=tuple(shlex.split(args.tests))) if args.tests else TARGETS[name]
        outcomes = _run_target(name, target, args)
        if outcomes is None:
            return 1
        results[name] = (target, outcomes)
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(_as_json(results), indent=2), "utf-8")
    return 0


def _run_target(name: str, target: Target, args: argparse.Namespace) -> list[Outcome] | None:
    source = (ROOT / target.path).read_text("utf-8")
    mutants = list_mutants(source, target.functions)
    if args.mutant:
        mutants = [m for m in mutants if m.number in args.mutant]
    with tempfile.TemporaryDirectory(prefix=f"mutation-{name}-") as workdir:
        base = _run_child(target, compile(source, str(ROOT / target.path), "exec"), Path(workdir) / "base",
                          timeout=None)
        if base.returncode != 0:
            print(f"{name}: the unmutated tests do not pass (exit {base.returncode}); fix that first:\n{base.output}")
            return None
        timeout = 3 * base.seconds + 10
        print(f"{name}: {len(mutants)} mutants of {target.path}; baseline {base.seconds:.1f} s, "
              f"timeout {timeout:.0f} s; tests: {' '.join(target.tests)}", flush=True)

        def run(m: Mutant) -> Outcome:
            code = compile(mutate(source, m.number, target.functions), str(ROOT / target.path), "exec")
            child = _run_child(target, code, Path(workdir) / f"m{m.number}", timeout)
            if child.returncode == NOT_IMPORTED:
                raise SystemExit(f"{name}: the tests never imported {target.module}; check TARGETS")
            status = "timeout" if child.returncode is None else "survived" if child.returncode == 0 else "killed"
            if args.verbose:
                print(f"  #{m.number} {status:8} {child.seconds:5.1f} s  {m.describe()}", flush=True)
                if status == "survived" or args.mutant:
                    print("    " + child.output.replace("\n", "\n    "))
            return Outcome(m, status, child.seconds)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            outcomes = list(pool.map(run, mutants))
    killed = sum(o.status != "survived" for o in outcomes)
    print(f"{name}: {killed}/{len(outcomes)} killed, {_percent(killed, len(outcomes))}", flush=True)
    return outcomes


@dataclass(frozen=True)
class _Child:
    returncode: int | None  # None: timed out
    seconds: float
    output: str


def _run_child(target: Target, code, stem: Path, timeout: float | None) -> _Child:
    stem.with_suffix(".code").write_bytes(marshal.dumps(code))
    command = [sys.executable, str(Path(__file__).resolve()), "--run-mutant", str(stem.with_suffix(".code")),
               target.module, str(ROOT / target.path), "--", *PYTEST_ARGS, *target.tests]
    env = {k: v for k, v in os.environ.items() if k != "GAVEL_TEST_DATABASE_URL"} | {"CI": "1"}
    started = time.monotonic()
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True, text=True) as child:
        try:
            output, _ = child.communicate(timeout=timeout)
            returncode: int | None = child.returncode
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
            returncode = None
    return _Child(returncode, time.monotonic() - started, output[-4000:])


def _run_mutant(code_file: str, module: str, path: str, pytest_args: list[str]) -> int:
    """In the child: serve `module` from the compiled code in `code_file`, then run pytest."""
    code = marshal.loads(Path(code_file).read_bytes())

    class MutantLoader(importlib.abc.Loader):
        def create_module(self, spec):
            return None

        def exec_module(self, mod) -> None:
            exec(code, mod.__dict__)

    loader = MutantLoader()

    class MutantFinder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, search_path, target=None):
            if fullname != module:
                return None
            return importlib.util.spec_from_file_location(fullname, path, loader=loader)

    sys.meta_path.insert(0, MutantFinder())
    sys.path.insert(0, str(ROOT))  # as `python -m pytest` from the root would
    import pytest  # after the finder, so nothing pytest imports can bring in the real module first

    status = int(pytest.main(pytest_args))
    loaded = sys.modules.get(module)
    if status == 0 and (loaded is None or getattr(loaded.__spec__, "loader", None) is not loader):
        return NOT_IMPORTED  # the tests passed without ever running the mutant: they prove nothing
    return status


def _report(results: dict[str, tuple[Target, list[Outcome]]]) -> None:
    print("\n| file | mutants | killed | timeout | survived | score |\n|---|---|---|---|---|---|")
    for target, outcomes in results.values():
        counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "timeout", "survived")}
        total = len(outcomes)
        print(f"| {target.path} | {total} | {counts['killed']} | {counts['timeout']} | {counts['survived']} "
              f"| {_percent(total - counts['survived'], total)} |")
    for target, outcomes in results.values():
        survivors = [o.mutant for o in outcomes if o.status == "survived"]
        if survivors:
            print(f"\nsurvivors in {target.path}:")
            for m in survivors:
                print(f"  #{m.number} {m.describe()}")


def _as_json(results: dict[str, tuple[Target, list[Outcome]]]) -> dict:
    return {name: {"path": target.path, "tests": list(target.tests),
                   "outcomes": [asdict(o.mutant) | {"status": o.status, "seconds": round(o.seconds, 2)}
                                for o in outcomes]}
            for name, (target, outcomes) in results.items()}


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


if __name__ == "__main__":
    sys.exit(main())
