"""`gavel repl`: driven through stdin as a script, through its session and completer APIs, and
once through a terminal (a pseudo-terminal) for history and Tab completion."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gavel.repl.completer import Completer
from gavel.repl.session import Session

RULES = '''package shop

let small = 500
let fiat = {"USD", "EUR"}

risk 30 "big" when action.amount > 1000

rule small_refund
  allow "refund.small"
  when {
    action.type == "refund"
    action.amount <= small
    action.currency in fiat
  }

rule over_limit
  deny "refund.over_limit"
  when agent.spend.today + action.amount > agent.daily_limit
'''
OTHER = '''package tools

let allowed = {"search"}

rule allowed_tool
  allow "tool.allowed"
  when action.tool in allowed
'''
MONDAY = datetime(2025, 1, 6, 12, tzinfo=UTC)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    (root / "data").mkdir(parents=True)
    (root / "shop.rules").write_text(RULES, encoding="utf-8")
    (root / "tools.rules").write_text(OTHER, encoding="utf-8")
    (root / "data" / "vendors.json").write_text('{"approved": ["acme"], "region": "eu"}', encoding="utf-8")
    return root


@pytest.fixture
def session(bundle: Path) -> Session:
    s = Session(clock=lambda: MONDAY)
    assert s.handle(f":load {bundle}").ok
    return s


def run_script(bundle: Path, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gavel.cli", "repl", str(bundle), *args], input=script,
                          capture_output=True, text=True, timeout=120, env=env)


# ---------------------------------------------------------------- a script on stdin


def test_a_script_evaluates_expressions_and_requests(bundle: Path, tmp_path: Path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"agent": {"spend": {"today": "0"}, "daily_limit": "2000"}}), encoding="utf-8")
    script = "\n".join((
        "small * 2",
        ':request {"action": {"type": "refund", "amount": "120.00", "currency": "USD"}, "agent": {"id": "a1"}}',
        "action.amount <= small",
        "agent.spend.today + action.amount",
        "day_of_week(now)",
        ":decide",
        ':decide {"action": {"type": "refund", "amount": "2500", "currency": "USD"}, "agent": {"id": "a1"}}',
        "risk.score",
        ":quit",
        "this line is never read",
    ))
    out = run_script(bundle, script, "--facts", str(facts), "--now", "2025-01-06T12:00:00Z")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("loaded 2 files, 3 rules, sha256:") and lines[0].endswith("package shop")
    assert "1000 : number" in lines
    assert "true : bool" in lines
    assert "120 : number" in lines
    assert '"monday" : string' in lines
    assert 'allow "refund.small" by shop.small_refund' in lines
    assert 'deny "refund.over_limit" by shop.over_limit' in lines
    assert "30 : number" in lines
    assert "never read" not in out.stdout


def test_a_script_with_a_failing_line_exits_1_and_says_where(bundle: Path) -> None:
    out = run_script(bundle, "action.amout > 1\nsmall\n")
    assert out.returncode == 1
    assert "error: <input>:1:1: error[E101]: unknown path `action.amout`" in out.stdout
    assert "did you mean `action.amount`?" in out.stdout
    assert "500 : number" in out.stdout  # the session goes on after an error


def test_bad_arguments_are_a_usage_error(bundle: Path) -> None:
    out = run_script(bundle, "", "--now", "2025-01-06T12:00:00")
    assert out.returncode == 2 and "not an ISO-8601 time with a zone" in out.stderr
    out = run_script(bundle, "", "--facts", "/no/such/facts.json")
    assert out.returncode == 2 and "cannot read facts /no/such/facts.json" in out.stderr


# ---------------------------------------------------------------- the session


def test_expressions_see_the_current_packages_lets(session: Session) -> None:
    assert session.handle("fiat").text == '{"EUR", "USD"} : set<string>'
    assert "unknown name `allowed`" in session.handle("allowed").text
    assert session.handle(":package tools").text == "package tools"
    assert session.handle("allowed").text == '{"search"} : set<string>'
    assert session.handle(":package").text == "packages: shop, *tools"
    assert "no package `nope`" in session.handle(":package nope").text


def test_values_print_as_the_language_writes_them(session: Session) -> None:
    cases = {
        "1h + 30m": "90m : duration", "0.1 + 0.2 == 0.3": "true : bool", '"a\\"b"': '"a\\"b" : string',
        "[1, null]": "[1, null] : list<number>", '{ a: 1, b: "x" }': '{a: 1, b: "x"} : object',
        "now": "2025-01-06T12:00:00Z : time", "data.vendors.approved": '["acme"] : dynamic',
        "context.missing": "null : dynamic",
    }
    for expr, expected in cases.items():
        assert session.handle(expr).text == expected, expr


def test_facts_now_and_explain(session: Session) -> None:
    session.handle(':request {"action": {"type": "refund", "amount": "100", "currency": "USD"}}')
    assert session.handle(":facts").text == "no facts"
    session.handle(':facts {"agent": {"spend": {"today": "1950"}, "daily_limit": "2000"}}')
    assert session.handle("agent.spend.today + action.amount > agent.daily_limit").text == "true : bool"
    explain = json.loads(session.handle(":explain").text)
    assert explain["summary"].startswith("deny by shop.over_limit (refund.over_limit)")
    assert session.handle(":now 2025-01-11T09:00:00+01:00").text == "2025-01-11T09:00:00+01:00"
    assert session.handle("day_of_week(now)").text == '"saturday" : string'
    assert session.handle(":now clock").text == "2025-01-06T12:00:00Z (the clock)"
    assert session.handle(":facts clear").text == "no facts"


def test_mistakes_are_answered_not_raised(session: Session) -> None:
    answers = {
        "1 / 0": "error[E111]: this constant expression fails: division by zero",
        "(1 +": "error[E001]: unexpected end of file",
        "number(context.x) + number(\"x\")": "evaluation failed:",
        ":now tomorrow": "`tomorrow` is not an ISO-8601 time with a zone",
        ":request [1]": "request must be a JSON object",
        ":request {": "request is not valid JSON",
        ":facts @/no/such.json": "cannot read facts /no/such.json",
        ":expl": "unknown command :expl (did you mean :explain?)",
        ":load /no/such/dir": "no such file or directory",
    }
    for line, expected in answers.items():
        reply = session.handle(line)
        assert not reply.ok and expected in reply.text, (line, reply.text)
    assert session.handle("small").text == "500 : number"  # still loaded, still working


def test_a_bundle_that_does_not_compile_is_not_loaded(session: Session, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "b.rules").write_text('package b\n\nrule r\n  deny "b.r"\n  when action.amout > 1\n', encoding="utf-8")
    reply = session.handle(f":load {broken}")
    assert not reply.ok and "does not compile" in reply.text and "E101" in reply.text
    assert session.handle("small").text == "500 : number"


def test_help_lists_every_command(session: Session) -> None:
    text = session.handle(":help").text
    for command in (":decide", ":explain", ":request", ":facts", ":now", ":package", ":load", ":help", ":quit"):
        assert command in text
    assert session.handle(":quit").quit


# ---------------------------------------------------------------- completion


def test_completion_through_the_completer_api(session: Session, bundle: Path) -> None:
    complete = Completer(session).complete
    assert complete(":ex") == (0, [":explain", ":exit"])
    assert complete("action.am") == (7, ["amount"])
    assert complete("agent.spend.") == (12, ["month", "today"])
    assert complete("data.vendors.") == (13, ["approved", "region"])
    assert complete("sma") == (0, ["small"])
    assert complete("len(act") == (4, ["action", "actors"])
    assert complete("startsw") == (0, ["startswith"])
    assert complete(":package t") == (9, ["tools"])
    start, words = complete(f":load {bundle.parent}/pol")
    assert start == 6 and words == [f"{bundle.parent}/policies/"]
    assert complete("small + action.", 3) == (0, ["small"])  # the cursor, not the end, decides
    assert "__repl_value" not in complete("")[1]


# ---------------------------------------------------------------- a terminal


def test_a_terminal_session_has_history_and_tab_completion(bundle: Path, tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = {**os.environ, "TERM": "dumb", "INPUTRC": "/dev/null"}
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gavel.cli", "repl", str(bundle), "--history", str(history)],
                            stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True)
    os.close(secondary)
    seen = b""

    def until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            ready, _, _ = select.select([main], [], [], 60)
            assert ready, f"no {marker!r} from the terminal; got {seen[-300:]!r}"
            seen += os.read(main, 4096)

    try:
        until(b"gavel(shop)> ")
        os.write(main, b"action.amo\t")  # Tab completes the path
        until(b"action.amount")
        os.write(main, b" > small\n")
        until(b"false : bool")
        os.write(main, b":quit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
    assert history.read_text(encoding="utf-8").splitlines()[-2:] == ["action.amount > small", ":quit"]
