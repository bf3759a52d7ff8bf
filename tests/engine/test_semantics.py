"""The language's semantics, case by case (LANGUAGE.md): absence, money, combining, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gavel import Engine, PolicyError

MONDAY = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def engine(*texts: str) -> Engine:
    return Engine.from_sources({f"f{i}.rules": t for i, t in enumerate(texts)})


def decide(text: str | Engine, request: dict, facts: dict | None = None, now: datetime = MONDAY):
    e = text if isinstance(text, Engine) else engine(text)
    tree = e.decide_at(request, facts, now)
    naive = e.decide_at(request, facts, now, naive=True)
    assert tree.to_dict() == naive.to_dict(), "decision tree and naive evaluation disagree"
    return tree


def req(type_: str = "refund", amount: str | None = "100", **more) -> dict:
    action = {"type": type_}
    if amount is not None:
        action["amount"] = amount
    action.update(more.pop("action", {}))
    return {"action": action, "agent": {"id": more.pop("agent", "a1")}, **more}


# ---------------------------------------------------------------- defaults and fail-closed

def test_no_match_anywhere_denies_with_policy_no_match() -> None:
    d = decide('package p\nrule r allow when action.type == "other"', req())
    assert (d.outcome, d.reason_code, d.rule) == ("deny", "policy.no_match", None)
    assert d.matched_rules == ()


def test_empty_bundle_denies() -> None:
    d = Engine.from_sources({}).decide_at(req(), None, MONDAY)
    assert d.reason_code == "policy.no_match"


def test_runtime_error_in_a_rule_denies_even_if_an_allow_matched() -> None:
    text = """package p
rule ok allow "p.ok" when action.type == "refund"
rule broken allow "p.broken" when context.limit > 5
"""
    d = decide(text, req(context={"limit": "not a number"}))
    assert d.outcome == "deny" and d.reason_code == "policy.evaluation_error"
    assert d.errors and d.errors[0].rule == "p.broken"
    assert "p.broken" in d.message


def test_false_condition_wins_over_failing_condition_in_either_order() -> None:
    text = """package p
rule r1 deny "p.r1" when { context.limit > 5
  action.type == "nope" }
rule r2 deny "p.r2" when { action.type == "nope"
  context.limit > 5 }
rule ok allow "p.ok" when action.type == "refund"
"""
    d = decide(text, req(context={"limit": "x"}))
    assert d.outcome == "allow", d.explain


def test_malformed_amount_fails_closed() -> None:
    d = decide('package p\nrule r allow when action.amount < 1000', req(amount="12,00"))
    assert d.outcome == "deny" and d.reason_code == "policy.evaluation_error"


def test_default_applies_only_in_scope_and_without_own_match() -> None:
    text = """package tools
scope action.type == "tool_call"
default deny "tools.not_allowlisted"
rule read allow "tools.read" when action.tool in {"search", "read_file"}
"""
    e = engine(text, 'package other\nrule anything allow "other.any" when action.amount > 0')
    assert decide(e, req("tool_call", action={"tool": "search"})).reason_code == "tools.read"
    d = decide(e, req("tool_call", action={"tool": "rm_rf"}))
    assert (d.outcome, d.reason_code, d.rule) == ("deny", "tools.not_allowlisted", "tools.default")
    assert decide(e, req("refund")).reason_code == "other.any"


# ---------------------------------------------------------------- combining

def test_most_restrictive_wins() -> None:
    text = """package p
rule a allow "p.a" when action.amount > 0
rule r require_approval "p.r" when action.amount > 50 route { role: "m" }
rule d deny "p.d" when action.amount > 90
"""
    d = decide(text, req(amount="100"))
    assert d.outcome == "deny" and d.rule == "p.d"
    assert d.matched_rules == ("p.d", "p.r", "p.a")
    assert "deny beats require_approval" in d.why
    d = decide(text, req(amount="60"))
    assert d.outcome == "require_approval" and d.route.role == "m"


def test_most_specific_then_priority_then_names() -> None:
    text = """package p
rule general deny "p.general" when action.type == "refund"
rule specific deny "p.specific" when { action.type == "refund"
  action.currency == "USD" }
"""
    d = decide(text, req(action={"currency": "USD"}))
    assert d.rule == "p.specific" and "most specific" in d.why
    text2 = """package p
rule low deny "p.low" when action.type == "refund"
rule high priority 5 deny "p.high" when action.type == "refund"
"""
    d = decide(text2, req())
    assert d.rule == "p.high" and "higher priority" in d.why
    text3 = """package b
rule z deny "b.z" when action.type == "refund"
"""
    text4 = """package a
rule y deny "a.y" when action.type == "refund"
"""
    d = decide(engine(text3, text4), req())
    assert d.rule == "a.y" and "sorts before" in d.why


def test_specificity_counts_scope_lets_and_quantifier_collections_but_not_facts_or_unless() -> None:
    text = """package p
scope action.type == "refund"
let cur = action.currency
rule r allow "p.r" when {
  cur == "USD"
  any i in action.args.items: i.price > 5
  agent.spend.today < 100
  risk.score < 50
}
unless context.hold == true
"""
    d = decide(text, req(action={"currency": "USD", "args": {"items": [{"price": 10}]}}),
               {"agent": {"spend": {"today": 1}}})
    (m,) = d.matches
    assert m.paths == ("action.args.items", "action.currency", "action.type")
    assert m.specificity == 3


def test_default_competes_with_its_scope_specificity() -> None:
    strict = """package strict
scope { action.type == "refund"
  action.currency == "EUR" }
default deny "strict.eur_refunds"
"""
    loose = """package loose
rule ok allow "loose.ok" when action.type == "refund"
"""
    d = decide(engine(strict, loose), req(action={"currency": "EUR"}))
    assert d.outcome == "deny" and d.rule == "strict.default"
    assert [m.rule for m in d.matches] == ["strict.default", "loose.ok"]


def test_reason_codes_list_winning_effect_only() -> None:
    text = """package p
rule a deny "p.one" when action.amount > 10
rule b deny "p.two" when action.type == "refund"
rule c allow "p.three" when action.amount > 0
"""
    d = decide(text, req())
    assert set(d.reason_codes) == {"p.one", "p.two"} and d.reason_codes[0] == d.reason_code


# ---------------------------------------------------------------- absence (null)

ABSENCE = """package p
let fiat = {"USD", "EUR"}
rule no_currency deny "p.no_currency" when action.currency not in fiat
rule big deny "p.big" when action.amount > 1000
rule missing_order require_approval "p.no_order" when context.order_id == null route { role: "m" }
rule ok allow "p.ok" when action.type == "refund"
"""


def test_not_in_denies_missing_currency() -> None:
    d = decide(ABSENCE, req(context={"order_id": "o1"}))
    assert d.reason_code == "p.no_currency"


def test_ordering_with_null_is_false_and_null_equality_tests_absence() -> None:
    d = decide(ABSENCE, req(amount=None, action={"currency": "USD"}))
    assert "p.big" not in d.matched_rules
    assert d.reason_code == "p.no_order"
    d = decide(ABSENCE, req(amount=None, action={"currency": "USD"}, context={"order_id": "o1"}))
    assert d.reason_code == "p.ok"


def test_arithmetic_with_null_is_null_and_builtins_with_null() -> None:
    text = """package p
rule budget deny "p.budget" when agent.spend.today + action.amount > agent.daily_limit
rule short deny "p.short" when len(context.note) < 3
rule pre deny "p.pre" when startswith(context.note, "x")
rule ok allow "p.ok" when action.type == "refund"
"""
    d = decide(text, req(), {"agent": {"spend": {"today": "10"}}})
    assert d.reason_code == "p.ok"


def test_null_in_set_is_false_even_when_set_holds_null() -> None:
    text = ('package p\nrule r deny "p.r" when context.x in {null, "a"}\n'
            'rule ok allow "p.ok" when action.type == "refund"')
    d = decide(text, req())
    assert d.reason_code == "p.ok"


def test_quantifiers_over_a_missing_collection_are_false_but_all_over_empty_is_true() -> None:
    text = """package p
rule every allow "p.every" when all i in action.args.items: i.price < 10
rule some deny "p.some" when any i in action.args.items: i.price >= 10
"""
    assert decide(text, req()).reason_code == "policy.no_match"  # missing: neither holds (fail closed)
    assert decide(text, req(action={"args": {"items": []}})).reason_code == "p.every"
    assert decide(text, req(action={"args": {"items": [{"price": 3}, {"price": 12}]}})).reason_code == "p.some"


# ---------------------------------------------------------------- money and numbers

def test_decimals_are_exact() -> None:
    text = """package p
rule exact allow "p.exact" when 0.1 + 0.2 == 0.3
"""
    assert decide(text, req()).outcome == "allow"


def test_amounts_compare_as_decimals_whatever_their_form() -> None:
    text = 'package p\nrule r allow "p.r" when action.amount == 120.5'
    for amount in ("120.50", "120.5", 120.5, "0120.500"):
        assert decide(text, req(amount=amount)).outcome == "allow", amount
    assert decide(text, req(amount="120.51")).outcome == "deny"


def test_booleans_are_not_numbers() -> None:
    text = """package p
rule one deny "p.one" when context.flag == 1
rule set deny "p.set" when context.flag in {1, 2}
rule ok allow "p.ok" when context.flag == true
"""
    d = decide(text, req(context={"flag": True}))
    assert d.reason_code == "p.ok" and d.matched_rules == ("p.ok",)
    d = decide(text, req(context={"flag": 1}))
    assert d.outcome == "deny"


def test_number_converts_decimal_strings_from_free_form_data() -> None:
    text = """package p
rule short deny "p.short" when number(context.received) < number(context.invoiced)
rule ok allow "p.ok" when action.type == "refund"
"""
    assert decide(text, req(context={"received": "9", "invoiced": "10"})).reason_code == "p.short"
    assert decide(text, req(context={"received": "10", "invoiced": 10})).reason_code == "p.ok"
    assert decide(text, req(context={"received": "ten", "invoiced": "10"})).reason_code == "policy.evaluation_error"


def test_object_literals_in_conditions_compile_and_evaluate() -> None:
    text = """package p
let limits = {ops: 5000, sales: 100}
rule within allow "p.within" when action.amount <= limits[action.business_unit]
"""
    assert decide(text, req(amount="4000", action={"business_unit": "ops"})).reason_code == "p.within"
    assert decide(text, req(amount="4000", action={"business_unit": "sales"})).reason_code == "policy.no_match"


def test_division_by_zero_at_runtime_fails_closed() -> None:
    d = decide('package p\nrule r allow when action.amount / context.n > 1', req(context={"n": 0}))
    assert d.reason_code == "policy.evaluation_error"


# ---------------------------------------------------------------- built-ins and time

BUILTINS = """package p
rule weekend deny "p.weekend" when day_of_week(now) in {"saturday", "sunday"}
rule night require_approval "p.night" when hour(now) < 6 route { role: "m" }
rule secret deny "p.secret" when matches(action.resource, "(^|/)secrets?/")
rule prod require_approval "p.prod" when glob(action.resource, "prod/*.db") route { role: "dba" }
rule external deny "p.external" when any r in action.args.recipients: endswith(lower(r), "@external.com")
rule stale deny "p.stale" when duration_since(context.created_at) > 7d
rule many deny "p.many" when sum(action.args.items, "price") > 100
rule ok allow "p.ok" when action.type == "tool"
"""


@pytest.mark.parametrize(
    ("request_", "now", "reason"),
    [
        (req("tool"), SATURDAY, "p.weekend"),
        (req("tool"), datetime(2026, 11, 16, 3, tzinfo=UTC), "p.night"),
        (req("tool", action={"resource": "vault/secrets/db"}), MONDAY, "p.secret"),
        (req("tool", action={"resource": "prod/a/b.db"}), MONDAY, "p.prod"),
        (req("tool", action={"resource": "prod/a.dbx"}), MONDAY, "p.ok"),
        (req("tool", action={"args": {"recipients": ["a@x.com", "B@EXTERNAL.COM"]}}), MONDAY, "p.external"),
        (req("tool", context={"created_at": "2026-11-01T00:00:00Z"}), MONDAY, "p.stale"),
        (req("tool", context={"created_at": "2026-11-15T00:00:00Z"}), MONDAY, "p.ok"),
        (req("tool", action={"args": {"items": [{"price": 60}, {"price": "50.5"}]}}), MONDAY, "p.evaluation_error"),
        (req("tool", action={"args": {"items": [{"price": 60}, {"price": 50.5}]}}), MONDAY, "p.many"),
    ],
)
def test_builtins(request_, now, reason) -> None:
    d = decide(BUILTINS, request_, now=now)
    expected = "policy.evaluation_error" if reason == "p.evaluation_error" else reason
    assert d.reason_code == expected, d.explain


def test_regex_is_linear_time() -> None:
    text = ('package p\nrule r deny "p.r" when matches(action.resource, "(a+)+$")\n'
            'rule ok allow "p.ok" when action.type == "tool"')
    d = decide(text, req("tool", action={"resource": "a" * 50_000 + "!"}))
    assert d.reason_code == "p.ok"


# ---------------------------------------------------------------- risk

RISK = """package p
risk 30 "large" when action.amount > 1000
risk 30 "new_vendor" when context.vendor_age_days < 30
risk -10 "known_customer" when context.known == true
risk 50 "huge" when action.amount > 100000
rule critical deny "p.critical" when risk.tier == "critical"
rule high require_approval "p.high" when risk.score >= 50 route { role: "m" }
rule ok allow "p.ok" when action.type == "refund"
"""


def test_risk_score_sums_clamps_and_tiers() -> None:
    d = decide(RISK, req(amount="5000", context={"vendor_age_days": 3, "known": True}))
    assert (d.risk_score, d.risk_tier, d.reason_code) == (50, "high", "p.high")
    assert [f.factor for f in d.risk_factors] == ["large", "new_vendor", "known_customer"]  # source order
    d = decide(RISK, req(amount="500000", context={"vendor_age_days": 3}))
    assert (d.risk_score, d.risk_tier, d.reason_code) == (100, "critical", "p.critical")
    d = decide(RISK, req(amount="5", context={"known": True}))
    assert (d.risk_score, d.risk_tier) == (0, "low")


# ---------------------------------------------------------------- routes, obligations, messages

def test_route_obligations_and_message() -> None:
    text = """package p
rule big require_approval "p.big"
  message "Big refunds need a director"
  when action.amount > 1000
  route { role: "director", approvals: 2, timeout: 2h, on_timeout: escalate, escalate_to: "cfo" }
  with { ticket_queue: "refunds", max: action.amount * 2 }
"""
    d = decide(text, req(amount="1500"))
    assert d.route.role == "director" and d.route.approvals == 2 and d.route.timeout.total_seconds() == 7200
    assert d.route.on_timeout == "escalate" and d.route.escalate_to == "cfo"
    assert d.message == "Big refunds need a director"
    assert d.to_dict()["obligations"] == {"max": "3000", "ticket_queue": "refunds"}
    assert "wait for 2 approvals from role `director` within 2h" in d.explain["next_steps"][0]


def test_unless_exempts() -> None:
    text = """package p
rule big deny "p.big" when action.amount > 100 unless { context.vip == true
  context.region == "eu" }
rule ok allow "p.ok" when action.type == "refund"
"""
    assert decide(text, req(amount="500", context={"vip": True})).reason_code == "p.big"
    assert decide(text, req(amount="500", context={"vip": True, "region": "eu"})).reason_code == "p.ok"


# ---------------------------------------------------------------- determinism and API

def test_explain_is_byte_identical_for_same_inputs() -> None:
    e = engine(RISK, BUILTINS.replace("package p", "package q"))
    r = req(amount="5000", context={"vendor_age_days": 3})
    a = json.dumps(e.decide_at(r, None, MONDAY).to_dict(), sort_keys=True)
    b = json.dumps(engine(BUILTINS.replace("package p", "package q"), RISK).decide_at(r, None, MONDAY).to_dict(),
                   sort_keys=True)
    assert a.replace(" ", "") and a != "" and json.loads(a)["outcome"] == json.loads(b)["outcome"]
    assert json.dumps(e.decide_at(r, None, MONDAY).to_dict(), sort_keys=True) == a


def test_bundle_hash_depends_on_content_only() -> None:
    a = Engine.from_sources({"x.rules": RISK})
    b = Engine.from_sources({"x.rules": RISK})
    c = Engine.from_sources({"x.rules": RISK + "\n"})
    assert a.bundle_hash == b.bundle_hash != c.bundle_hash
    assert a.bundle_hash.startswith("sha256:") and len(a.bundle_hash) == 71


def test_policy_error_lists_every_diagnostic_and_never_half_loads() -> None:
    with pytest.raises(PolicyError) as info:
        Engine.from_sources({
            "good.rules": 'package g\nrule r allow when action.type == "x"',
            "bad.rules": "package b\nrule r allow when action.amout > 1\nrule s deny when agent.idd == 1",
        })
    codes = [d.code for d in info.value.diagnostics if d.is_error]
    assert codes == ["E101", "E101"]
    assert "bad.rules:2:19" in str(info.value) and "did you mean `action.amount`" in str(info.value)


def test_engine_load_reads_directories_and_reports_missing_paths(tmp_path) -> None:
    (tmp_path / "a.rules").write_text('package a\nrule r allow "a.r" when action.type == "x"')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.rules").write_text('package b\nrule r deny "b.r" when action.type == "y"')
    (tmp_path / "notes.txt").write_text("ignored")
    e = Engine.load(tmp_path)
    assert e.decide({"action": {"type": "y"}, "agent": {"id": "z"}}).reason_code == "b.r"
    assert Engine.load(str(tmp_path)).bundle_hash == e.bundle_hash
    with pytest.raises(PolicyError, match="no such file"):
        Engine.load(tmp_path / "missing")
    (tmp_path / "bin.rules").write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyError, match="UTF-8"):
        Engine.load(tmp_path)


def test_decide_rejects_bad_argument_types() -> None:
    from gavel import InvalidInput

    e = engine('package p\nrule r allow when action.type == "x"')
    with pytest.raises(InvalidInput, match="^request must be a mapping$"):
        e.decide(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="^facts must be a mapping or None$"):
        e.decide({}, facts="nope")  # type: ignore[arg-type]


def test_decision_to_dict_has_the_documented_fields() -> None:
    d = decide(RISK, req(amount="5000"))
    assert set(d.to_dict()) == {"outcome", "reason_code", "reason_codes", "rule", "message", "matched_rules",
                                "risk", "route", "obligations", "bundle_hash", "explain"}
    assert set(d.explain) == {"summary", "winner", "matched", "risk", "errors", "next_steps"}


# ---------------------------------------------------------------- regressions found by review

def test_set_equality_is_strict_about_booleans() -> None:
    text = ('package p\nrule r deny "p.r" when ({context.flag} == {1})\n'
            'rule ok allow "p.ok" when action.type == "refund"')
    assert decide(text, req(context={"flag": True})).reason_code == "p.ok"
    assert decide(text, req(context={"flag": 1})).reason_code == "p.r"


def test_glob_star_matches_newlines() -> None:
    text = ('package p\nrule r deny "p.r" when glob(context.note, "a*b")\n'
            'rule ok allow "p.ok" when action.type == "refund"')
    assert decide(text, req(context={"note": "a\nb"})).reason_code == "p.r"


def test_variadic_min_max_with_a_null_argument_are_null() -> None:
    text = ('package p\nrule r deny "p.r" when min(context.a, 3) == 3\n'
            'rule s deny "p.s" when max([context.a, 3]) == 3\n'
            'rule ok allow "p.ok" when action.type == "refund"')
    d = decide(text, req())
    assert "p.r" not in d.matched_rules and "p.s" in d.matched_rules  # the list form skips nulls


def test_matches_accepts_a_constant_let_pattern() -> None:
    text = 'package p\nlet secret = "(^|/)secrets?/"\nrule r deny "p.r" when matches(action.resource, secret)'
    assert decide(text, req(action={"resource": "vault/secret/x"})).reason_code == "p.r"


def test_risk_factors_are_listed_in_source_order() -> None:
    risks = "\n".join(f'risk 1 "f{i}" when action.amount > 0' for i in range(12))
    d = decide(f"package p\n{risks}\nrule ok allow \"p.ok\" when action.type == \"refund\"", req())
    assert [f.factor for f in d.risk_factors] == [f"f{i}" for i in range(12)]


def test_engine_load_refuses_two_files_with_one_bundle_name(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.rules").write_text('package a\nrule r allow when action.type == "x"')
    (tmp_path / "b" / "x.rules").write_text('package b\nrule r deny when action.type == "x"')
    with pytest.raises(PolicyError, match="same bundle name"):
        Engine.load(tmp_path / "a" / "x.rules", tmp_path / "b" / "x.rules")


def test_compiled_bundles_are_reused_by_content_hash() -> None:
    a = Engine.from_sources({"c.rules": RISK})
    assert Engine.from_sources({"c.rules": RISK}) is a
    assert Engine.from_sources({"c.rules": RISK + "\n"}) is not a
