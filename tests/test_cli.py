"""The author's CLI: exit codes 0 ok, 1 policy/test errors, 2 usage errors; output formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """package refunds
let fiat = {"USD", "EUR"}
rule wrong_currency deny "refund.currency" when action.currency not in fiat
rule small allow "refund.small" when action.amount <= 500

test "small passes" {
  input { action: { type: "refund", amount: "10", currency: "USD" }, agent: { id: "a" } }
  expect allow "refund.small"
}
"""


def gavel(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gavel.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, timeout=60)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    (tmp_path / "refunds.rules").write_text(GOOD)
    return tmp_path


def test_check_ok_and_error_exit_codes(rules: Path) -> None:
    ok = gavel("check", str(rules))
    assert ok.returncode == 0 and "ok: 1 file, 2 rules, 0 errors" in ok.stdout
    (rules / "bad.rules").write_text("package bad\nrule r allow when action.amout > 1\n")
    bad = gavel("check", str(rules))
    assert bad.returncode == 1
    assert "bad.rules:2:19: error[E101]: unknown path `action.amout`" in bad.stdout
    assert "^^^^" in bad.stdout and "did you mean `action.amount`?" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
    js = json.loads(gavel("check", "--format", "json", str(rules)).stdout)
    assert js["ok"] is False and js["diagnostics"][0]["code"] == "E101" and js["diagnostics"][0]["line"] == 2


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert gavel("check", str(tmp_path / "missing")).returncode == 2
    assert gavel("check", str(tmp_path)).returncode == 2  # no .rules files
    assert gavel("nonsense").returncode == 2
    assert gavel("eval", "--rules", str(tmp_path)).returncode == 2  # --input missing


def test_test_command_reports_and_fails_on_a_broken_expectation(rules: Path) -> None:
    out = gavel("test", "--coverage", str(rules))
    assert out.returncode == 0
    assert out.stdout.strip().endswith("1 passed, 0 failed")
    assert "not covered: refunds.wrong_currency" in out.stdout
    (rules / "refunds.rules").write_text(GOOD.replace('expect allow "refund.small"', 'expect deny "refund.small"'))
    out = gavel("test", str(rules))
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "expected deny" in out.stdout and "got      allow" in out.stdout
    assert out.stdout.strip().endswith("0 passed, 1 failed")


def test_eval_prints_deterministic_json(rules: Path) -> None:
    request = json.dumps({"action": {"type": "refund", "amount": "120.50", "currency": "GBP"}, "agent": {"id": "a"}})
    one = gavel("eval", "--rules", str(rules), "--input", "-", "--now", "2026-11-21T10:00:00Z", stdin=request)
    two = gavel("eval", "--rules", str(rules), "--input", "-", "--now", "2026-11-21T10:00:00Z", stdin=request)
    assert one.returncode == 0 and one.stdout == two.stdout
    decision = json.loads(one.stdout)
    assert decision["outcome"] == "deny" and decision["reason_code"] == "refund.currency"
    assert decision["matched_rules"] == ["refunds.wrong_currency", "refunds.small"]


def test_eval_bad_input_is_a_usage_error(rules: Path) -> None:
    out = gavel("eval", "--rules", str(rules), "--input", "-", stdin="{not json")
    assert out.returncode == 2 and "not valid JSON" in out.stderr
    out = gavel("eval", "--rules", str(rules), "--input", "-", "--now", "yesterday", stdin="{}")
    assert out.returncode == 2 and "--now" in out.stderr


def test_eval_and_test_report_policy_errors_with_exit_1(rules: Path) -> None:
    (rules / "bad.rules").write_text("package bad\nrule r allow when 'x'\n")
    out = gavel("eval", "--rules", str(rules), "--input", "-", stdin="{}")
    assert out.returncode == 1 and "bad.rules:2:19" in out.stderr
    assert gavel("test", str(rules)).returncode == 1


def test_check_reads_a_directorys_data_files(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "vendors.json").write_text('{"blocked": ["acme"]}')
    (tmp_path / "p.rules").write_text('package p\nrule r deny "p.r" when action.entity in data.vendors.blocked\n')
    assert gavel("check", str(tmp_path)).returncode == 0
    (tmp_path / "p.rules").write_text('package p\nrule r deny "p.r" when action.entity in data.vendorz.blocked\n')
    out = gavel("check", str(tmp_path))
    assert out.returncode == 1 and "did you mean `data.vendors`?" in out.stdout
    (tmp_path / "data" / "vendors.json").write_text('{"blocked": [1,}')
    out = gavel("check", str(tmp_path))
    assert out.returncode == 1 and "vendors.json:1:16: error[E008]" in out.stdout
