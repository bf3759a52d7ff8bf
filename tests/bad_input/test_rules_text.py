"""Generated `.rules` files through `gavel check` (the CLI entry point, in process) and through
`PolicyService.ValidateRules` on the real server.

tests/lang/test_robustness.py already feeds token soup and random text to the compiler. This
goes further out, to what authors actually run: near-miss policies (the example policies in
rules/ with slices deleted, duplicated or replaced by tokens) written to disk as bytes — with
byte-order marks, CRLF, NUL and invalid UTF-8 mixed in — and checked by the CLI in both output
formats. Any input ends with exit 0 (no errors) or 1 (errors), and every error is
`file:line:col: error[Ennn]: message` with a real position; the JSON form says the same; the
server's ValidateRules agrees with `gavel check` on whether the text compiles.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gavel.cli import main
from gavel.v1 import policy_pb2, policy_pb2_grpc

CORPUS = sorted(p.read_text(encoding="utf-8") for p in (Path(__file__).parents[2] / "rules").glob("*.rules"))
TOKENS = ["package", "rule", "let", "scope", "default", "risk", "test", "when", "unless", "route", "allow", "deny",
          "require_approval", "{", "}", "(", ")", "[", "]", ",", ":", ".", "==", "<=", "in", "not", "and", "or",
          "+", "*", "/", "-", '"', '"x"', "1", "0.5", "24h", "null", "true", "action.amount", "context.x",
          "agent.spend.today", "data.x", "any", "len(", "matches", "\n", "\t", "#", "\\", "'", "é", "😀",
          "\u202e", "\u00a0", "9" * 40, "(" * 70, ")" * 70]
ERROR_LINE = r"^{path}:(\d+):(\d+): error\[E\d{{3}}\]: \S"


@st.composite
def near_miss_policies(draw) -> bytes:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        span = draw(st.integers(0, 80))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "replace"]))
        if op == "delete":
            text = text[:at] + text[at + span:]
        elif op == "duplicate":
            text = text[:at] + text[at:at + span] + text[at:]
        else:
            token = draw(st.sampled_from(TOKENS))
            text = text[:at] + token + text[at + (span if op == "replace" else 0):]
    data = text.encode("utf-8")
    damage = draw(st.sampled_from(["none"] * 6 + ["bom", "crlf", "cr", "nul", "bad-utf8", "truncated"]))
    if damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif damage == "cr":
        data = data.replace(b"\n", b"\r")
    elif damage == "nul":
        data = data[: len(data) // 2] + b"\x00" + data[len(data) // 2:]
    elif damage == "bad-utf8":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"])) + data[at:]
    elif damage == "truncated":
        data = data[: draw(st.integers(0, len(data)))]
    event(f"damage {damage}")
    return data


def check(path: Path, *options: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", *options, str(path)])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules-text")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(near_miss_policies(), near_miss_policies(), st.binary(max_size=300)))
def test_gavel_check_answers_any_file_with_located_diagnostics(served, workdir: Path, data: bytes) -> None:
    path = workdir / "policy.rules"
    path.write_bytes(data)
    code, out, err = check(path)
    assert code in (0, 1), f"exit {code}: {out}{err}"
    assert err == "", f"gavel check wrote to stderr: {err}"
    located = re.findall(ERROR_LINE.format(path=re.escape(str(path))), out, flags=re.MULTILINE)
    event(f"exit {code}")
    if code == 1:
        assert located, f"exit 1 without a `file:line:col: error[E…]` line:\n{out}"
        assert all(int(line) >= 1 and int(col) >= 1 for line, col in located), out
    else:
        assert not located and out.rstrip().splitlines()[-1].startswith("ok:"), out

    code_json, out_json, err_json = check(path, "--format", "json")
    doc = json.loads(out_json)
    assert code_json == code and err_json == ""
    assert doc["ok"] == (code == 0)
    errors = [d for d in doc["diagnostics"] if d["severity"] == "error"]
    assert bool(errors) == (code == 1)
    for d in doc["diagnostics"]:
        assert d["file"] == str(path) and d["line"] >= 1 and d["column"] >= 1 and re.fullmatch(r"[EW]\d{3}", d["code"])

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    with served.clean_log():
        reply = policy_pb2_grpc.PolicyServiceStub(served.channel).ValidateRules(
            policy_pb2.ValidateRulesRequest(files={"policy.rules": text}), metadata=served.md(), timeout=30)
    assert reply.ok == (code == 0), f"gavel check exit {code}, ValidateRules ok={reply.ok}: {reply.diagnostics}"
    for d in reply.diagnostics:
        assert d.location.line >= 1 and d.location.column >= 1 and d.code, d
