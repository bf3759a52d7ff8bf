"""Generated approval resolutions — over gRPC (ResolveApproval) and over the approvers'
REST callback (`POST /v1/approvals/{id}/resolve`) — against a real server.

Each example first makes a fresh pending approval (a payment of 600 routed to
`finance_manager`), then resolves it, or some other id, with generated actions, notes,
modified actions and escalation targets, as `alice` (a finance_manager key).

Accepted answers, and why:

| gRPC | REST | when |
|---|---|---|
| OK | 200 | the resolution was applied |
| INVALID_ARGUMENT | 400 | a bad action, note, modified action, body or header |
| NOT_FOUND | 404 | an approval id that does not exist here |
| FAILED_PRECONDITION | 409 | INVALID_TRANSITION: the task is already resolved, or the rules deny the modified action |
| PERMISSION_DENIED | 403 | FORBIDDEN: the task was escalated to a role alice does not hold |
| ALREADY_EXISTS | 409 | an idempotency key reused with another body |

A plain APPROVE or DENY of the fresh task, with a note of at most 2,000 characters without NUL
and no modified action, must succeed. Never INTERNAL / 500, never a traceback in the server log.
"""

from __future__ import annotations

import http.client
import json
import uuid

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gavel.v1 import approval_pb2, approval_pb2_grpc, common_pb2, decision_pb2, decision_pb2_grpc
from tests.bad_input.checks import assert_typed, refusal
from tests.bad_input.strategies import (
    JSON_SCALARS,
    amounts,
    currencies,
    json_values,
    nested,
    structs,
    text,
    to_struct,
)

C = grpc.StatusCode
GRPC_OK = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.FAILED_PRECONDITION, C.PERMISSION_DENIED, C.ALREADY_EXISTS}
REST_OK = {200, 400, 403, 404, 409}
ACTIONS = [approval_pb2.RESOLUTION_ACTION_APPROVE, approval_pb2.RESOLUTION_ACTION_DENY,
           approval_pb2.RESOLUTION_ACTION_MODIFY, approval_pb2.RESOLUTION_ACTION_ESCALATE]
USED_KEYS: set[str] = set()
MODIFIED_ARGS = st.one_of(st.dictionaries(text(8), json_values(JSON_SCALARS), max_size=4),
                          st.integers(2, 24).map(lambda n: {"deep": nested(n)}))


def pending_approval(served) -> str:
    d = decision_pb2_grpc.DecisionServiceStub(served.channel).Decide(decision_pb2.DecideRequest(
        action=common_pb2.Action(type="payment", amount="600", currency="USD"),
        agent=decision_pb2.AgentRef(id="bot-approvals"), actors=decision_pb2.Actors(requester_id="bob")),
        metadata=served.md(), timeout=30)
    assert d.approval.approval_id, d
    return d.approval.approval_id


@st.composite
def modified_actions(draw) -> common_pb2.Action:
    a = common_pb2.Action()
    for name, strategy in (("type", st.sampled_from(["payment", "refund", ""])), ("amount", amounts()),
                           ("currency", currencies()), ("entity", text()), ("tool", text())):
        if draw(st.booleans()):
            setattr(a, name, draw(strategy))
    if draw(st.booleans()):
        a.args.CopyFrom(to_struct(draw(MODIFIED_ARGS)))
    return a


@st.composite
def resolutions(draw):
    fresh = draw(st.integers(0, 9)) < 7
    req = approval_pb2.ResolveApprovalRequest(
        action=draw(st.sampled_from(ACTIONS * 4 + [0, -1, 5, 2**31 - 1])),
        note=draw(st.one_of(st.just(""), text())),
        escalate_to=draw(st.one_of(st.just(""), st.sampled_from(["cfo", "finance_manager"]), text())),
        idempotency_key=draw(st.sampled_from(["", "uuid", "uuid", "text"]).flatmap(
            lambda kind: {"": st.just(""), "uuid": st.uuids().map(str), "text": text()}[kind])))
    if not fresh:
        req.approval_id = draw(st.one_of(st.just(""), st.just("apr_01m0000000000000000000000"), text()))
    if draw(st.booleans()):
        req.modified_action.CopyFrom(draw(modified_actions()))
    return fresh, req


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=resolutions())
def test_resolve_approval_answers_generated_resolutions_with_a_typed_status(served, case) -> None:
    fresh, req = case
    stub = approval_pb2_grpc.ApprovalServiceStub(served.channel)
    with served.clean_log():
        if fresh:
            req.approval_id = pending_approval(served)
        try:
            stub.ResolveApproval(req, metadata=served.md("finance"), timeout=30)
            err = None
        except grpc.RpcError as e:
            err = refusal(e)
        key = req.idempotency_key
        reused = bool(key) and key in USED_KEYS
        USED_KEYS.add(key)
        event(f"grpc {err.code.name if err else 'OK'}")
        plain = (fresh and req.action in ACTIONS[:2] and len(req.note) <= 2000 and "\x00" not in req.note
                 and not req.HasField("modified_action")
                 and not reused)
        if err is None:
            return
        assert_typed(err, GRPC_OK, "ResolveApproval")
        assert not plain, f"a plain APPROVE/DENY of a fresh task was refused: {err}"
        if err.code == C.PERMISSION_DENIED:
            assert err.reason in ("FORBIDDEN", "SOD_VIOLATION"), err
        if err.code == C.ALREADY_EXISTS:
            assert reused, f"ALREADY_EXISTS for a new idempotency key: {err}"


# ---------------------------------------------------------------- the REST callback

def post(served, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        raise AssertionError(f"{path}: {resp.status} with a body that is not JSON: {raw[:200]!r}") from None
    return resp.status, doc


def assert_rest_refusal(status: int, doc: dict, allowed: set[int], what: str) -> None:
    assert status in allowed, f"{what}: HTTP {status}: {doc}"
    if status >= 400:
        error = doc.get("error") or {}
        assert error.get("code") and error.get("message"), f"{what}: HTTP {status} without a typed error: {doc}"


JSON_ANY = json_values(JSON_SCALARS, max_leaves=6)
REST_MODIFIED = st.fixed_dictionaries({}, optional={
    "amount": st.one_of(st.decimals(0, 10**4, places=2).map(str), amounts(), JSON_ANY), "currency": currencies(),
    "entity": text(), "type": st.sampled_from(["payment", "refund"]), "args": st.one_of(structs(), JSON_ANY),
    "bogus": JSON_ANY})
WELL_TYPED = st.fixed_dictionaries({"action": st.sampled_from(["APPROVE", "deny", "Modify", "ESCALATE", "", "maybe"])},
                                   optional={"note": text(), "modified_action": REST_MODIFIED,
                                             "escalate_to": st.one_of(st.sampled_from(["cfo", ""]), text())})
ODD = st.fixed_dictionaries({}, optional={"action": JSON_ANY, "note": JSON_ANY, "modified_action": JSON_ANY,
                                          "escalate_to": JSON_ANY, "extra": JSON_ANY})
REST_BODIES = st.one_of(WELL_TYPED, WELL_TYPED, WELL_TYPED, ODD)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.sampled_from(["json"] * 5 + ["bytes", "special"]).flatmap(lambda kind: {
           "json": REST_BODIES.map(lambda b: json.dumps(b).encode()), "bytes": st.binary(max_size=64),
           "special": st.sampled_from([b"", b"null", b"[]", b"{", b'{"action": "APPROVE"}' + b" " * 70_000])}[kind]),
       with_key=st.sampled_from([True, True, True, False]), fresh=st.sampled_from([True, True, True, False]))
def test_rest_resolve_answers_generated_bodies_with_a_typed_error(served, body: bytes, with_key: bool,
                                                                  fresh: bool) -> None:
    with served.clean_log():
        approval_id = pending_approval(served) if fresh else uuid.uuid4().hex
        headers = served.http_headers("finance", uuid.uuid4().hex if with_key else None)
        status, doc = post(served, f"/v1/approvals/{approval_id}/resolve", body, headers)
        event(f"http {status} {doc.get('error', {}).get('code', '')}")
        assert_rest_refusal(status, doc, REST_OK, "POST /v1/approvals/{id}/resolve")
        if not with_key:
            assert status == 400 and doc["error"]["code"] == "IDEMPOTENCY_KEY_MISSING", doc



@pytest.mark.parametrize("change, field", [
    ({"amount": "abc"}, "modified_action.amount"), ({"amount": "NaN"}, "modified_action.amount"),
    ({"amount": "-5"}, "modified_action.amount"), ({"amount": 12}, "modified_action.amount"),
    ({"currency": 5}, "modified_action.currency"), ({"currency": "usd"}, "modified_action.currency"),
    ({"entity": "e" * 300}, "modified_action.entity"), ({"tool": "a\x00b"}, "modified_action.tool"),
    ({"args": 5}, "modified_action.args"), ({"args": {"n": 2**53}}, "modified_action.args.n"),
    ({"args": nested(17)}, "modified_action.args"), ({"bogus": 1}, "modified_action.bogus")])
def test_rest_modify_refuses_a_bad_modified_action_naming_the_field(served, change: dict, field: str) -> None:
    with served.clean_log():
        status, doc = post(served, f"/v1/approvals/{pending_approval(served)}/resolve",
                           json.dumps({"action": "MODIFY", "modified_action": change}).encode(),
                           served.http_headers("finance", uuid.uuid4().hex))
    assert status == 400 and doc["error"]["code"] == "INVALID_REQUEST", (status, doc)
    assert any(f["field"].startswith(field) for f in doc["error"].get("fields", [])), doc


def test_rest_modify_accepts_numbers_in_args(served) -> None:
    with served.clean_log():
        status, doc = post(served, f"/v1/approvals/{pending_approval(served)}/resolve",
                           json.dumps({"action": "MODIFY", "modified_action": {
                               "amount": "550", "args": {"discount": 0.5, "items": [1, 2]}}}).encode(),
                           served.http_headers("finance", uuid.uuid4().hex))
    assert status == 200 and doc["status"] == "modified", (status, doc)
    assert doc["modified_action"]["args"] == {"discount": 0.5, "items": [1, 2]}, doc

