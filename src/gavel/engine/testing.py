"""Policy tests (`test` blocks) run against a compiled engine. Pure: no clock, no files.

A test without `now` runs at `DEFAULT_TEST_NOW` (a Monday at noon UTC), so results never
depend on the day the suite runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gavel.engine.decision import Decision
from gavel.engine.engine import CompiledEngine
from gavel.lang.check import parse_time
from gavel.lang.ir import TestIR

DEFAULT_TEST_NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class TestResult:
    test: TestIR
    decision: Decision
    passed: bool

    @property
    def expected(self) -> str:
        t = self.test
        parts = [t.expect_effect or "?"]
        if t.expect_reason:
            parts.append(f'"{t.expect_reason}"')
        if t.expect_role:
            parts.append(f'role "{t.expect_role}"')
        return " ".join(parts)

    @property
    def actual(self) -> str:
        d = self.decision
        parts = [d.outcome, f'"{d.reason_code}"']
        if d.route is not None:
            parts.append(f'role "{d.route.role}"')
        if d.rule:
            parts.append(f"by {d.rule}")
        return " ".join(parts)


@dataclass(frozen=True)
class TestReport:
    results: tuple[TestResult, ...]
    uncovered: tuple[str, ...]  # rule ids no test matched

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed


def run_tests(engine: CompiledEngine) -> TestReport:
    results = []
    hit: set[str] = set()
    for test in engine.policy.tests:
        now = parse_time(test.now) if test.now else DEFAULT_TEST_NOW
        decision = engine.decide_at(test.input, test.facts, now)
        hit.update(decision.matched_rules)
        ok = (
            decision.outcome == test.expect_effect
            and (test.expect_reason is None or decision.reason_code == test.expect_reason)
            and (test.expect_role is None or (decision.route is not None and decision.route.role == test.expect_role))
        )
        results.append(TestResult(test, decision, ok))
        hit.update(f.rule for f in decision.risk_factors)
    every_rule = ([r.ir.id for r in engine.policy.rules] + [d.ir.id for d in engine.policy.defaults]
                  + [r.ir.id for r in engine.policy.risks])
    uncovered = tuple(sorted(r for r in every_rule if r not in hit))
    return TestReport(tuple(results), uncovered)
