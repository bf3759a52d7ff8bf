"""Golden explain output: the exact decision documents for representative requests.

These are the byte-level contract of `Decision.to_dict()` (what `gavel eval` prints and the
service signs and stores). Regenerate after an intended change with GAVEL_UPDATE_GOLDENS=1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gavel import Engine
from tests.goldens import check_golden

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "explain"
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)  # a Saturday

CASES = {
    "refund_small_allow": ({"action": {"type": "refund_approve", "amount": "120.00", "currency": "USD"},
                            "agent": {"id": "support-refund-agent"}, "context": {"order_id": "o1"}},
                           {"agent": {"registered": True, "spend": {"today": "0"}, "daily_limit": "2000"}}),
    "refund_medium_approval": ({"action": {"type": "refund_approve", "amount": "5000", "currency": "EUR"},
                                "agent": {"id": "support-refund-agent"}}, None),
    "refund_blocked_agent_many_matches": ({"action": {"type": "refund_create", "amount": "30000", "currency": "JPY"},
                                           "agent": {"id": "rogue-bot"}}, None),
    "tool_default_deny": ({"action": {"type": "tool_call", "tool": "rm_rf"}, "agent": {"id": "support-agent"}},
                          None),
    "no_match": ({"action": {"type": "teleport"}, "agent": {"id": "a"}}, None),
    "evaluation_error": ({"action": {"type": "refund_approve", "amount": "1,000", "currency": "USD"},
                          "agent": {"id": "support-refund-agent"}}, None),
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(ROOT / "rules")


@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_golden(engine: Engine, name: str) -> None:
    request, facts = CASES[name]
    doc = engine.decide_at(request, facts, NOW).to_dict()
    doc["bundle_hash"] = "<rules/ bundle>"  # the policies evolve; the explain structure is the contract
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    check_golden(HERE / f"{name}.json", text)


def test_explain_is_identical_across_evaluators_and_runs(engine: Engine) -> None:
    for request, facts in CASES.values():
        a = json.dumps(engine.decide_at(request, facts, NOW).to_dict(), sort_keys=True)
        b = json.dumps(engine.decide_at(request, facts, NOW, naive=True).to_dict(), sort_keys=True)
        assert a == b
