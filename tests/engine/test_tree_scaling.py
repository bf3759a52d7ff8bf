"""Building the decision tree costs work proportional to the policy, whatever its shape.

Two shapes used to make one tenant's compile take minutes (issue 14):
- thousands of thresholds on one path (`action.amount <= 1`, `<= 2`, …): every rule's interval
  was tested against every elementary segment before the fan-out check threw the split away;
- rules with several large `in {…}` sets: each rule was copied into the product of their sizes.

Work is counted as Python function calls made while building (deterministic), never as time.
The tree must still decide exactly like the naive evaluator on both shapes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gavel.api import Engine
from gavel.engine import policy as policy_module
from gavel.engine.tree import MAX_PLACEMENTS_PER_RULE, MIN_PLACEMENTS, build_tree, tree_stats

OPS = ("<=", "<", ">=", ">")
NOW = datetime(2025, 3, 14, 10, 30, tzinfo=UTC)


def thresholds(n: int) -> str:
    """n rules, each one bound on `action.amount` (the four operators, bounds repeating)."""
    lines = ["package limits", ""]
    for i in range(n):
        effect = ("allow", "deny", "require_approval")[i % 3]
        route = '\n  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny }' \
            if effect == "require_approval" else ""
        lines += [f"rule r{i}", f'  {effect} "limit.r{i}"', f"  when action.amount {OPS[i % 4]} {i // 2}{route}", ""]
    return "\n".join(lines)


def products(n: int, k: int) -> str:
    """n rules, each with three membership sets of k, k/3 and k/3 values on different paths."""
    lines = ["package sets", ""]
    for i in range(n):
        types = ", ".join(f'"t{(i + j) % 97}"' for j in range(k))
        channels = ", ".join(f'"c{(i + j) % 31}"' for j in range(k // 3))
        units = ", ".join(f'"u{(i + j) % 29}"' for j in range(k // 3))
        lines += [f"rule r{i}", f'  allow "sets.r{i}"', "  when {", f"    action.type in {{{types}}}",
                  f"    context.channel in {{{channels}}}", f"    context.unit in {{{units}}}", "  }", ""]
    return "\n".join(lines)


def calls_while_building(source: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Python calls made inside `build_tree` while compiling `source`."""
    count = 0

    def counting(*args, **kwargs):
        nonlocal count

        def profile(frame, event, arg):
            nonlocal count
            if event == "call":
                count += 1

        sys.setprofile(profile)
        try:
            return build_tree(*args, **kwargs)
        finally:
            sys.setprofile(None)

    monkeypatch.setattr(policy_module, "build_tree", counting)
    Engine.from_texts({"p.rules": source})
    return count


def test_thresholds_on_one_path_build_in_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    small = calls_while_building(thresholds(1000), monkeypatch)
    large = calls_while_building(thresholds(2000), monkeypatch)
    # linear work doubles (plus a little for the sort); the quadratic build made it 4×
    assert large < 2.5 * small, (small, large)


def test_membership_products_stay_within_the_placement_budget() -> None:
    n = 60
    engine = Engine.from_texts({"p.rules": products(n, 90)})
    entries = tree_stats(engine.policy.rule_tree)["entries"]
    # unbounded, each rule would sit in 90 × 30 × 30 = 81,000 leaves
    assert entries <= MAX_PLACEMENTS_PER_RULE * n + MIN_PLACEMENTS + n, entries


def _agree(engine: Engine, request: dict) -> None:
    tree = engine.decide_at(request, None, NOW).to_dict()
    naive = engine.decide_at(request, None, NOW, naive=True).to_dict()
    assert tree == naive, (request, tree["matched_rules"], naive["matched_rules"])


@pytest.mark.parametrize("n", [40, 400])
def test_threshold_trees_decide_like_the_naive_evaluator(n: int) -> None:
    engine = Engine.from_texts({"p.rules": thresholds(n)})
    probes = {Decimal(b) + d for b in range(-1, n // 2 + 2) for d in (Decimal("-0.5"), Decimal(0), Decimal("0.5"))}
    for amount in sorted(probes):
        if amount >= 0:
            _agree(engine, {"action": {"type": "x", "amount": str(amount)}, "agent": {"id": "a"}})


def test_overlapping_and_empty_intervals_decide_like_the_naive_evaluator() -> None:
    source = "\n".join([
        "package edges",
        'rule a\n  allow "edge.a"\n  when { action.amount > 5\n    action.amount < 5 }',        # empty
        'rule b\n  allow "edge.b"\n  when { action.amount >= 5\n    action.amount <= 5.0 }',     # one point
        'rule c\n  deny "edge.c"\n  when { action.amount > 5\n    action.amount <= 7 }',
        'rule d\n  deny "edge.d"\n  when { action.amount >= 7\n    action.amount < 9 }',
        'rule e\n  allow "edge.e"\n  when action.amount < 5',
        'rule f\n  allow "edge.f"\n  when action.amount >= 9',
    ])
    engine = Engine.from_texts({"p.rules": source})
    for amount in ("0", "4.99", "5", "5.00", "5.01", "6", "7", "7.0", "8.5", "9", "9.5", "100"):
        _agree(engine, {"action": {"type": "x", "amount": amount}, "agent": {"id": "a"}})


def test_membership_products_decide_like_the_naive_evaluator() -> None:
    engine = Engine.from_texts({"p.rules": products(60, 90)})
    for t in range(0, 97, 7):
        for c in range(0, 31, 5):
            for u in range(0, 29, 4):
                _agree(engine, {"action": {"type": f"t{t}"}, "agent": {"id": "a"},
                                "context": {"channel": f"c{c}", "unit": f"u{u}"}})
