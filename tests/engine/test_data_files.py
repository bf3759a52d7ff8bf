"""Data files: `data/NAME.json` in a bundle is the constant `data.NAME` (docs/language.md §11.1)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gavel import Engine, PolicyError
from gavel.engine.policy import bundle_hash
from gavel.engine.tree import Switch
from gavel.lang.pipeline import compile_sources

NOW = datetime(2026, 11, 18, 12, tzinfo=UTC)

VENDORS = """package vendors
scope action.type == "payment"
rule approved allow "vendor.approved" when {
  action.entity in data.vendors.approved
  action.amount <= data.limits.payment
}
rule blocked deny "vendor.blocked" when action.entity in data.vendors.blocked
"""
VENDORS_JSON = '{"approved": ["acme", "globex"], "blocked": ["initech"]}'
LIMITS_JSON = '{"payment": 1000.50}'


def bundle(**more: str) -> dict[str, str]:
    return {"vendors.rules": VENDORS, "data/vendors.json": VENDORS_JSON, "data/limits.json": LIMITS_JSON, **more}


def decide(engine: Engine, action: dict):
    request = {"action": {"type": "payment", **action}, "agent": {"id": "a1"}}
    tree = engine.decide_at(request, None, NOW)
    naive = engine.decide_at(request, None, NOW, naive=True)
    assert tree.to_dict() == naive.to_dict(), "decision tree and naive evaluation disagree"
    return tree


def errors_of(sources: dict[str, str]):
    with pytest.raises(PolicyError) as caught:
        Engine.from_sources(sources)
    return caught.value


# ---------------------------------------------------------------- reading data

def test_rules_read_data_files_as_typed_constants() -> None:
    engine = Engine.from_sources(bundle())
    assert decide(engine, {"entity": "acme", "amount": "1000.50"}).reason_code == "vendor.approved"
    assert decide(engine, {"entity": "acme", "amount": "1000.51"}).reason_code == "policy.no_match"
    assert decide(engine, {"entity": "initech", "amount": "1"}).reason_code == "vendor.blocked"
    assert decide(engine, {"entity": "hooli", "amount": "1"}).reason_code == "policy.no_match"


def test_nested_folders_make_dotted_names_and_missing_members_are_null() -> None:
    rules = """package eu
rule bank allow "eu.bank" when {
  action.entity in data.eu.banks
  data.eu.banks_meta.missing == null
}
"""
    engine = Engine.from_sources({"eu.rules": rules, "data/eu/banks.json": '["ing", "bnp"]',
                                  "data/eu/banks_meta.json": "{}"})
    assert decide(engine, {"entity": "ing"}).outcome == "allow"
    assert decide(engine, {"entity": "hsbc"}).outcome == "deny"


def test_numbers_in_data_are_exact_decimals() -> None:
    rules = """package m
rule exact allow "m.exact" when {
  data.money.a + data.money.b == data.money.c
  action.amount == data.money.precise
}
"""
    money = '{"a": 0.1, "b": 0.2, "c": 0.3, "precise": 12345678901234567890.123456789}'
    engine = Engine.from_sources({"m.rules": rules, "data/money.json": money})
    assert decide(engine, {"amount": "12345678901234567890.123456789"}).outcome == "allow"
    assert decide(engine, {"amount": "12345678901234567890.12345679"}).outcome == "deny"
    const = engine.compilation.data.values["money"]["precise"]
    assert const == Decimal("12345678901234567890.123456789") and isinstance(const, Decimal)


def test_membership_in_a_data_list_is_indexed_by_the_decision_tree() -> None:
    lists = {f"l{i}": [f"e{i}", f"f{i}"] for i in range(6)}
    rules = "package idx\n" + "".join(
        f'rule r{i} allow "idx.r{i}" when action.entity in data.lists.l{i}\n' for i in range(6))
    engine = Engine.from_sources({"idx.rules": rules, "data/lists.json": json.dumps(lists)})
    assert isinstance(engine.policy.rule_tree, Switch)
    assert engine.policy.rule_tree.path == ("request", "action", "entity")
    for i in range(6):
        assert decide(engine, {"entity": f"f{i}"}).rule == f"idx.r{i}"
    assert decide(engine, {"entity": "zzz"}).reason_code == "policy.no_match"


def test_data_paths_do_not_count_towards_specificity() -> None:
    rules = """package s
rule r allow "s.r" when {
  action.type == "payment"
  data.flags.enabled == true
  data.flags.level > 2
}
"""
    engine = Engine.from_sources({"s.rules": rules, "data/flags.json": '{"enabled": true, "level": 3}'})
    assert decide(engine, {}).outcome == "allow"
    (match,) = [r.match for r in engine.policy.rules]
    assert (match.specificity, match.paths) == (1, ("action.type",))


def test_a_let_may_name_data_and_data_is_a_reserved_root() -> None:
    ok = Engine.from_sources({"l.rules": 'package l\nlet vendors = data.vendors.approved\n'
                                         'rule r allow "l.r" when action.entity in vendors\n',
                              "data/vendors.json": VENDORS_JSON})
    assert decide(ok, {"entity": "globex"}).outcome == "allow"
    exc = errors_of({"l.rules": "package l\nlet data = 1\nrule r allow when data == 1\n"})
    assert any(d.code == "E203" and "let `data` hides a built-in name" in d.message for d in exc.diagnostics)


def test_a_data_value_that_breaks_a_constant_expression_is_an_error_at_compile_time() -> None:
    exc = errors_of({"x.rules": 'package x\nrule r allow when data.x.s + 1 == 2\n', "data/x.json": '{"s": "t"}'})
    (d,) = exc.diagnostics
    assert (d.code, d.span.file, d.span.line) == ("E111", "x.rules", 2)


# ---------------------------------------------------------------- diagnostics

def test_an_unknown_data_file_is_e101_with_did_you_mean() -> None:
    exc = errors_of(bundle(**{"typo.rules": "package t\nrule r deny when action.entity in data.vendor.blocked\n"}))
    (d,) = exc.diagnostics
    assert (d.code, d.message, d.help) == ("E101", "unknown path `data.vendor`", "did you mean `data.vendors`?")
    assert (d.span.file, d.span.line, d.span.column) == ("typo.rules", 2, 35)
    assert "typo.rules:2:35: error[E101]: unknown path `data.vendor`" in str(exc)


def test_unknown_data_names_without_a_hint_list_the_files_or_say_there_are_none() -> None:
    far = errors_of(bundle(**{"t.rules": "package t\nrule r deny when data.zzzzzzzz == 1\n"}))
    assert far.diagnostics[0].help == "`data` has: limits, vendors"
    none = errors_of({"t.rules": "package t\nrule r deny when data.vendors == 1\n"})
    assert "this bundle has no data files" in none.diagnostics[0].help


def test_malformed_json_is_a_diagnostic_with_its_location_and_the_bundle_fails_whole() -> None:
    exc = errors_of(bundle(**{"data/limits.json": '{\n  "payment": 10,\n  "refund" 5\n}\n'}))
    (d,) = exc.diagnostics
    assert (d.code, d.span.file, d.span.line, d.span.column) == ("E008", "data/limits.json", 3, 12)
    assert d.message == "malformed JSON: expecting ':' delimiter"
    assert "data/limits.json:3:12: error[E008]" in str(exc) and '  "refund" 5' in str(exc)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("data/dup.json", '{"a": 1, "a": 2}', "malformed JSON: key `a` given twice in one object"),
    ("data/nan.json", '[NaN]', "malformed JSON: `NaN` is not a JSON number"),
    ("data/bad-name.json", "1", "data file name `data/bad-name.json` is not a name rules can read"),
    ("data/deep.json", "[" * 70 + "]" * 70, "data nested deeper than 64 levels"),
    ("data/deeper.json", "[" * 100_000 + "]" * 100_000, "data nested deeper than 64 levels"),
    ("stray.json", "[]", "a JSON file outside `data/` is not part of a bundle"),
])
def test_bad_data_files_are_refused(name: str, text: str, message: str) -> None:
    exc = errors_of(bundle(**{name: text}))
    assert [d.message for d in exc.diagnostics] == [message]
    assert exc.diagnostics[0].span.file == name


def test_a_file_and_a_folder_with_one_name_clash() -> None:
    exc = errors_of(bundle(**{"data/eu.json": "1", "data/eu/banks.json": "[]"}))
    assert [d.message for d in exc.diagnostics] == ["`data.eu` is both a data file and a folder of data files"]


def test_without_the_data_files_the_checker_leaves_data_paths_dynamic() -> None:
    # `gavel check` on rule files alone: the names cannot be checked, so they are not refused
    comp = compile_sources({"v.rules": VENDORS})
    assert comp.ok and comp.data is None


# ---------------------------------------------------------------- hashing and loading

def test_the_bundle_hash_covers_the_data_files() -> None:
    a = Engine.from_sources(bundle())
    b = Engine.from_sources(bundle(**{"data/limits.json": '{"payment": 1000.5}'}))
    assert a.bundle_hash != b.bundle_hash
    assert a.bundle_hash == bundle_hash(bundle())


def test_a_bundle_without_data_files_hashes_as_before() -> None:
    text = 'package p\nrule r allow "p.r" when action.type == "x"\n'
    entries = [["p.rules", hashlib.sha256(text.encode()).hexdigest()]]
    expected = "sha256:" + hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()
    assert Engine.from_sources({"p.rules": text}).bundle_hash == expected == bundle_hash({"p.rules": text})


def test_engine_load_picks_up_data_files_under_data(tmp_path: Path) -> None:
    (tmp_path / "vendors.rules").write_text(VENDORS)
    (tmp_path / "data" / "eu").mkdir(parents=True)
    (tmp_path / "data" / "vendors.json").write_text(VENDORS_JSON)
    (tmp_path / "data" / "limits.json").write_text(LIMITS_JSON)
    (tmp_path / "data" / "eu" / "banks.json").write_text("[]")
    (tmp_path / "data" / ".hidden.json").write_text("not json")
    (tmp_path / "notes.json").write_text("not json, and not data")
    engine = Engine.load(tmp_path)
    assert engine.bundle_hash == bundle_hash({**bundle(), "data/eu/banks.json": "[]"})
    assert decide(engine, {"entity": "globex", "amount": "5"}).outcome == "allow"
    (tmp_path / "data" / "limits.json").write_text("{oops")
    with pytest.raises(PolicyError) as caught:
        Engine.load(tmp_path)
    assert caught.value.diagnostics[0].span.file.endswith("data/limits.json")
