"""Every input limit, at the limit (accepted) and one past it (refused with the documented
status and a message that names the limit), over the real server and the real CLI.

- a gRPC message: 4 MiB (`GAVEL_MAX_MESSAGE_BYTES`) → RESOURCE_EXHAUSTED "Received message
  larger than max (N vs. 4194304)";
- `args` / `context`: 16 levels of nesting, 1,000 keys and list items, keys of 256 characters,
  finite numbers within ±(2**53 - 1) → INVALID_ARGUMENT naming the field and the limit;
- `rationale` 2,000 characters, other text fields 256 (idempotency_key 255), no NUL anywhere →
  INVALID_ARGUMENT naming the field;
- amounts: ASCII decimal strings → INVALID_ARGUMENT on `action.amount`;
- a `.rules` file: 16 MiB by default, `GAVEL_MAX_RULES_FILE_BYTES` when set (here 1,000,000) →
  `gavel check` exit 1 with `file:1:1: error[E006]`, `gavel serve` exit 1 naming the file and
  the limit; a generated 10,000-rule file (~1.36 MB) passes by default (ValidateRules and
  bundles with a configured limit: tests/e2e/test_rules_file_limit.py);
- a bundle: 16 MiB of files, unpacking to at most 64 MiB (and the archive within the 4 MiB
  message) → INVALID_ARGUMENT saying which;
- a REST body: 64 KiB → 400 INVALID_REQUEST `body larger than 65536 bytes`.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import grpc
import pytest

from gavel.v1 import common_pb2, decision_pb2, decision_pb2_grpc, policy_pb2, policy_pb2_grpc
from tests.bad_input.checks import assert_typed, refusal
from tests.bad_input.served import RULES
from tests.bad_input.strategies import nested, to_struct

C = grpc.StatusCode
MAX_MESSAGE = 4 * 1024 * 1024
MAX_RULES_FILE = 1_000_000  # configured with GAVEL_MAX_RULES_FILE_BYTES where the tests say so
DEFAULT_MAX_RULES_FILE = 16 * 1024 * 1024


def decide(served, **kw):
    args, context = kw.pop("args", None), kw.pop("context", None)
    req = decision_pb2.DecideRequest(action=common_pb2.Action(type="payment", amount="1", currency="USD"),
                                     agent=decision_pb2.AgentRef(id="bot-limits"), **kw)
    if args is not None:
        req.action.args.CopyFrom(to_struct(args))
    if context is not None:
        req.context.CopyFrom(to_struct(context))
    try:
        with served.clean_log():
            return decision_pb2_grpc.DecisionServiceStub(served.channel).Decide(req, metadata=served.md(), timeout=60)
    except grpc.RpcError as err:
        return refusal(err)


def refused(result, field: str, words: str) -> None:
    assert not isinstance(result, decision_pb2.Decision), f"accepted, expected a refusal of {field}"
    assert_typed(result, {C.INVALID_ARGUMENT})
    assert any(f == field or f.startswith(field + ".") or f.startswith(field + "[") for f in result.fields), result
    assert words in result.message, result.message


def accepted(result) -> None:
    assert isinstance(result, decision_pb2.Decision), result


# ---------------------------------------------------------------- gRPC messages

def test_a_message_over_4_mib_is_resource_exhausted_and_says_so(served) -> None:
    result = decide(served, rationale="x" * (MAX_MESSAGE + 1))
    assert result.code == C.RESOURCE_EXHAUSTED, result
    assert "larger than max" in result.message and str(MAX_MESSAGE) in result.message, result.message
    with served.clean_log():
        try:
            policy_pb2_grpc.PolicyServiceStub(served.channel).PublishBundle(
                policy_pb2.PublishBundleRequest(bundle=os.urandom(MAX_MESSAGE + 10)), metadata=served.md(), timeout=60)
            raise AssertionError("a 4 MiB bundle was accepted")
        except grpc.RpcError as err:
            assert err.code() == C.RESOURCE_EXHAUSTED and "larger than max" in err.details(), err
    served.assert_serving()


def test_a_message_just_under_4_mib_is_processed(served) -> None:
    text = "package p\n" + "#" * (MAX_MESSAGE - 4096)  # one ~4 MiB file: within the 16 MiB per-file limit
    with served.clean_log():
        reply = policy_pb2_grpc.PolicyServiceStub(served.channel).ValidateRules(
            policy_pb2.ValidateRulesRequest(files={"big.rules": text}), metadata=served.md(), timeout=60)
    assert reply.ok and not [d for d in reply.diagnostics if d.severity == "error"], reply.diagnostics


# ---------------------------------------------------------------- Decide fields

@pytest.mark.parametrize("where", ["args", "context"])
def test_nesting_is_limited_to_16_levels(served, where: str) -> None:
    field = "action.args" if where == "args" else "context"
    accepted(decide(served, **{where: nested(16)}))
    refused(decide(served, **{where: nested(17)}), field, "nested deeper than 16 levels")
    refused(decide(served, **{where: {"list": [[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]}}), field, "nested deeper")


@pytest.mark.parametrize("where", ["args", "context"])
def test_keys_and_items_are_limited_to_1000(served, where: str) -> None:
    field = "action.args" if where == "args" else "context"
    accepted(decide(served, **{where: {f"k{i}": i for i in range(1000)}}))
    refused(decide(served, **{where: {f"k{i}": i for i in range(1001)}}), field, "more than 1000 keys and items")
    refused(decide(served, **{where: {"a": list(range(600)), "b": list(range(600))}}), field, "more than 1000")
    accepted(decide(served, **{where: {"k" * 256: 1}}))
    refused(decide(served, **{where: {"k" * 257: 1}}), field, "a key is longer than 256 characters")


def test_numbers_in_args_stay_within_the_exact_json_range(served) -> None:
    accepted(decide(served, args={"n": 2**53 - 1, "m": -(2**53 - 1), "f": 0.1}))
    for n in (2**53, -(2**53), 1e20, 1e300):
        refused(decide(served, args={"n": n}), "action.args.n", "numbers must be within ±(2**53 - 1)")
    refused(decide(served, context={"n": float("nan")}), "context", "NaN")


def test_text_fields_have_limits_and_no_nul(served) -> None:
    accepted(decide(served, rationale="r" * 2000, correlation_id="c" * 256, idempotency_key="k" * 255))
    refused(decide(served, rationale="r" * 2001), "rationale", "longer than 2000 characters")
    refused(decide(served, correlation_id="c" * 257), "correlation_id", "longer than 256 characters")
    refused(decide(served, idempotency_key="k" * 256), "idempotency_key", "longer than 255 characters")
    for kw, field in (({"rationale": "a\x00b"}, "rationale"), ({"correlation_id": "\x00"}, "correlation_id"),
                      ({"idempotency_key": "k\x00"}, "idempotency_key")):
        refused(decide(served, **kw), field, "must not contain NUL")
    req = decide(served, actors=decision_pb2.Actors(requester_id="x\x00"))
    refused(req, "actors.requester_id", "NUL")


def test_amounts_take_ascii_digits_only(served) -> None:
    accepted(decide(served))
    for amount in ("١٢٣", "９", "1\u0660", "²"):
        result = decision_pb2_grpc.DecisionServiceStub(served.channel)
        try:
            result.Decide(decision_pb2.DecideRequest(
                action=common_pb2.Action(type="payment", amount=amount, currency="USD"),
                agent=decision_pb2.AgentRef(id="bot-limits")), metadata=served.md(), timeout=30)
            raise AssertionError(f"amount {amount!r} was accepted")
        except grpc.RpcError as err:
            refused(refusal(err), "action.amount", "decimal string")


# ---------------------------------------------------------------- rules files and bundles

GAVEL = [sys.executable, "-m", "gavel.cli"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAVEL_")}
    env.update(extra)
    return env


def test_gavel_check_refuses_an_oversized_file_with_a_located_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "ok.rules").write_text("package p\n" + "#" * (MAX_RULES_FILE - 11) + "\n")
    (tmp_path / "big.rules").write_text("package p\n" + "#" * MAX_RULES_FILE + "\n")
    env = cli_env(GAVEL_MAX_RULES_FILE_BYTES=str(MAX_RULES_FILE))
    ok = subprocess.run([*GAVEL, "check", str(tmp_path / "ok.rules")], capture_output=True, text=True, timeout=120,
                        env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    big = subprocess.run([*GAVEL, "check", str(tmp_path / "big.rules")], capture_output=True, text=True, timeout=120,
                         env=env)
    assert big.returncode == 1 and "Traceback" not in big.stderr, big.stdout + big.stderr
    assert f"{tmp_path / 'big.rules'}:1:1: error[E006]: file is larger than {MAX_RULES_FILE} bytes" in big.stdout


def test_gavel_check_takes_a_generated_10000_rule_file_and_refuses_one_past_16_mib(tmp_path: Path) -> None:
    from tests.e2e.generated import per_agent_rules

    fleet = per_agent_rules(10_000)
    assert 1_300_000 < len(fleet.encode()) < 1_400_000
    (tmp_path / "fleet.rules").write_text(fleet)
    (tmp_path / "huge.rules").write_text("package p\n" + "#" * (DEFAULT_MAX_RULES_FILE - 10) + "\n")
    ok = subprocess.run([*GAVEL, "check", str(tmp_path / "fleet.rules")], capture_output=True, text=True,
                        timeout=600, env=cli_env())
    assert ok.returncode == 0 and "10000 rules, 0 errors" in ok.stdout, ok.stdout[-2000:] + ok.stderr
    big = subprocess.run([*GAVEL, "check", str(tmp_path / "huge.rules")], capture_output=True, text=True,
                         timeout=120, env=cli_env())
    assert big.returncode == 1, big.stdout + big.stderr
    assert f"huge.rules:1:1: error[E006]: file is larger than {DEFAULT_MAX_RULES_FILE} bytes" in big.stdout
    bad = subprocess.run([*GAVEL, "check", str(tmp_path / "fleet.rules")], capture_output=True, text=True,
                         timeout=120, env=cli_env(GAVEL_MAX_RULES_FILE_BYTES="16MiB"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
    assert "GAVEL_MAX_RULES_FILE_BYTES: must be a whole number of bytes" in bad.stderr, bad.stderr


def test_gavel_serve_refuses_an_oversized_rules_file_at_start(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "payments.rules").write_text(RULES)
    (rules / "big.rules").write_text("package big\n" + "#" * MAX_RULES_FILE + "\n")
    env = cli_env(GAVEL_DATA_DIR=str(tmp_path / "data"), GAVEL_RULES=str(rules),
                  GAVEL_MAX_RULES_FILE_BYTES=str(MAX_RULES_FILE))
    out = subprocess.run([*GAVEL, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert f"{rules / 'big.rules'}: file is larger than {MAX_RULES_FILE} bytes" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def archive(entries: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9)


def publish(served, data: bytes):
    with served.clean_log():
        try:
            return policy_pb2_grpc.PolicyServiceStub(served.channel).PublishBundle(
                policy_pb2.PublishBundleRequest(bundle=data), metadata=served.md(), timeout=120)
        except grpc.RpcError as err:
            return refusal(err)


def test_publish_refuses_archives_that_unpack_past_the_limits(served) -> None:
    bomb = archive({"files/a.rules": b"\0" * (65 * 1024 * 1024)})  # unpacks past 64 MiB
    assert len(bomb) < MAX_MESSAGE
    result = publish(served, bomb)
    assert_typed(result, {C.INVALID_ARGUMENT})
    assert "unpacks to more than" in result.message, result
    heavy = archive({"files/a.rules": b" " * (17 * 1024 * 1024)})  # the files add up past 16 MiB
    result = publish(served, heavy)
    assert_typed(result, {C.INVALID_ARGUMENT})
    assert "add up to more than 16777216 bytes" in result.message, result
    served.assert_serving()


def test_rest_bodies_over_64_kib_are_400(served) -> None:
    body = json.dumps({"url": "http://127.0.0.1:9/x", "events": ["authorization.decided"],
                       "description": "d" * 70_000}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    try:
        with served.clean_log():
            conn.request("POST", "/v1/webhooks", body=body,
                         headers={**served.http_headers("hooks", "limit-1"), "Content-Type": "application/json"})
            resp = conn.getresponse()
            doc = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 400 and doc["error"]["code"] == "INVALID_REQUEST", doc
    assert "larger than 65536 bytes" in doc["error"]["message"], doc
