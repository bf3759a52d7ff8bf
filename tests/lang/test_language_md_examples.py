"""Every example in the design's LANGUAGE.md works as written there (copied into cases/)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gavel import Engine
from gavel.engine.testing import run_tests

CASES = Path(__file__).parent / "cases"


def test_the_whole_file_example_compiles_cleanly_and_its_tests_pass() -> None:
    engine = Engine.load(CASES / "language_md_example.rules")
    assert engine.warnings == ()
    report = run_tests(engine)
    assert [r.test.name for r in report.results] == [
        "a small refund passes", "a medium refund waits for a finance manager"]
    assert report.failed == 0


def test_the_examples_behave_as_the_prose_says() -> None:
    engine = Engine.load(CASES / "language_md_example.rules")
    base = {"action": {"type": "refund_approve", "currency": "USD"}, "agent": {"id": "support-refund-agent"}}

    def decide(amount: str, agent: str = "support-refund-agent", currency: str | None = "USD",
               now: datetime = datetime(2026, 11, 18, tzinfo=UTC), facts=None):
        req = {**base, "action": {**base["action"], "amount": amount}, "agent": {"id": agent}}
        if currency is None:
            del req["action"]["currency"]
        else:
            req["action"]["currency"] = currency
        return engine.decide_at(req, facts, now)

    assert decide("10", agent="rogue-bot").reason_code == "agent.blocked"
    assert decide("10", currency=None).reason_code == "currency.unsupported"  # `not in` denies a missing currency
    assert decide("5000").route.role == "finance_manager"
    saturday = datetime(2026, 11, 21, tzinfo=UTC)
    d = decide("60000", now=saturday)
    assert (d.outcome, d.reason_code) == ("deny", "spend.weekend_high_value")
    assert d.message == "High-value refunds are not allowed on weekends"
    assert d.risk_score == 50 and d.risk_tier == "high"  # large_amount 30 + no_order_ref 20
    assert decide("60000").reason_code == "policy.no_match"  # a weekday: no rule covers it


def test_expression_examples_from_the_reference() -> None:
    engine = Engine.from_sources({"x.rules": """package x
rule exact allow "x.exact" when 0.1 + 0.2 == 0.3
rule items deny "x.items" when any i in action.args.items: i.price > 100
rule every deny "x.every" when all i in action.args.items: i.qty > 0 and i.qty < 2
rule text deny "x.text" when {
  startswith(lower(action.tool), "write_")
  matches(action.resource, "^prod/")
  glob(action.resource, "prod/*.db")
}
"""})
    now = datetime(2026, 11, 18, tzinfo=UTC)
    assert engine.decide_at({"action": {"type": "t"}}, None, now).outcome == "allow"
    d = engine.decide_at({"action": {"type": "t", "args": {"items": [{"price": 150, "qty": 1}]}}}, None, now)
    assert set(d.matched_rules) == {"x.items", "x.every", "x.exact"}
    d = engine.decide_at({"action": {"type": "t", "tool": "Write_File", "resource": "prod/a/b.db"}}, None, now)
    assert d.rule == "x.text"
