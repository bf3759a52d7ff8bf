"""Running the `test` blocks of one file, or one test, as `gavel test` does (same runner, same
default `now`), and saying the result in `gavel test`'s words."""

from __future__ import annotations

from dataclasses import replace

from gavel.engine.engine import CompiledEngine
from gavel.engine.testing import TestReport, TestResult, run_tests


def run_selected(engine: CompiledEngine, file: str, line: int | None = None) -> TestReport:
    """The tests declared in `file` (only the one starting on `line`, when given)."""
    chosen = tuple(t for t in engine.policy.tests
                   if t.span.file == file and (line is None or t.span.line == line))
    program = replace(engine.policy.program, tests=chosen)
    return run_tests(CompiledEngine(replace(engine.policy, program=program), engine.compilation))


def describe(result: TestResult, where: str | None = None) -> str:
    """`PASS name`, or `FAIL name` with what was expected, what came and the explain."""
    test = result.test
    place = where or f"{test.span.file}:{test.span.line}"
    if result.passed:
        return f"PASS  {place}  {test.name}"
    return "\n".join((
        f"FAIL  {place}  {test.name}",
        f"      expected {result.expected}",
        f"      got      {result.actual}",
        f"      explain  {result.decision.explain['summary']}",
    ))
