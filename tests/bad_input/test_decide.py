"""Generated DecideRequests against a real server, judged by an oracle written from the
documented input rules (README "Errors", API.md "Key messages"):

- a request the rules call valid is decided (OK, a decision id, one of the three outcomes);
- a request they call invalid is INVALID_ARGUMENT whose field violations name only fields the
  rules flag (the server may stop at the first problem, so it need not name them all);
- ExplainDecision, the dry run, accepts and refuses exactly what Decide does;
- DecideStream ends OK when every request is valid, else INVALID_ARGUMENT naming a bad field.

The only other answer accepted is ALREADY_EXISTS for an idempotency key that was already used
with another body. Anything else — INTERNAL, UNKNOWN, a hang, a traceback in the server log —
fails the test.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gavel.v1 import common_pb2, decision_pb2, decision_pb2_grpc, policy_pb2, policy_pb2_grpc
from tests.bad_input.checks import assert_typed, refusal
from tests.bad_input.strategies import (
    VALID_SCALARS,
    amounts,
    currencies,
    json_depth,
    json_items,
    json_values,
    json_walk,
    structs,
    text,
    to_struct,
)

C = grpc.StatusCode
TEXT_FIELDS = ("subtype", "entity", "business_unit", "jurisdiction", "tool", "resource")
MODES = [common_pb2.MODE_UNSPECIFIED, common_pb2.MODE_ENFORCE, common_pb2.MODE_MONITOR, common_pb2.MODE_WARN,
         common_pb2.MODE_STRICT]
AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,8})?")
CURRENCY = re.compile(r"[A-Z]{3}")
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
INPUT_HASH = re.compile(r"sha256:[0-9a-f]{64}")
USED_KEYS: set[str] = set()  # idempotency keys sent so far (a reuse with another body is ALREADY_EXISTS)


@dataclass
class Generated:
    request: decision_pb2.DecideRequest
    args: dict | None
    context: dict | None


def bad_text(value: str, limit: int = 256) -> bool:
    return len(value) > limit or "\x00" in value


def bad_struct(value: dict | None) -> bool:
    if value is None:
        return False
    for kind, item in json_walk(value):
        if kind == "key" and len(item) > 256:
            return True
        if kind == "scalar" and isinstance(item, float) and not (math.isfinite(item) and abs(item) <= 2**53 - 1):
            return True
    return json_depth(value) > 16 or json_items(value) > 1000


def expected_problems(g: Generated) -> set[str]:
    """The fields the documented rules refuse in this request."""
    r, a = g.request, g.request.action
    problems = set()
    if not a.type or bad_text(a.type):
        problems.add("action.type")
    if not AGENT_ID.fullmatch(r.agent.id):
        problems.add("agent.id")
    for name in TEXT_FIELDS:
        if bad_text(getattr(a, name)):
            problems.add(f"action.{name}")
    if a.amount and (bad_text(a.amount) or not AMOUNT.fullmatch(a.amount)):
        problems.add("action.amount")
    if a.currency and (bad_text(a.currency) or not CURRENCY.fullmatch(a.currency)):
        problems.add("action.currency")
    if bad_text(r.agent.session_id):
        problems.add("agent.session_id")
    for name in ("requester_type", "requester_id", "human_sponsor_id", "user_id"):
        if bad_text(getattr(r.actors, name)):
            problems.add(f"actors.{name}")
    if bad_text(r.rationale, 2000):
        problems.add("rationale")
    if r.HasField("confidence") and not (math.isfinite(r.confidence) and 0 <= r.confidence <= 1):
        problems.add("confidence")
    if r.input_hash and not INPUT_HASH.fullmatch(r.input_hash):
        problems.add("input_hash")
    if r.mode not in MODES:
        problems.add("mode")
    if bad_text(r.idempotency_key, 255):
        problems.add("idempotency_key")
    if bad_text(r.correlation_id):
        problems.add("correlation_id")
    if bad_struct(g.args):
        problems.add("action.args")
    if bad_struct(g.context):
        problems.add("context")
    return problems


def _maybe(strategy, empty=""):
    return st.one_of(st.just(empty), strategy)


GOOD_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
GOOD_STRUCT = st.dictionaries(st.text(max_size=10).filter(lambda k: "\x00" not in k),
                              json_values(VALID_SCALARS, max_leaves=8), max_size=4)
# Each field: (a valid value, a hostile one). A request starts valid and gets a few hostile fields,
# so that both sides of the oracle are exercised often.
FIELDS = {
    "type": (st.sampled_from(["payment", "refund", "tool_call"]), st.one_of(st.just(""), text())),
    "amount": (_maybe(st.decimals(0, 10**6, places=2).map(str)), amounts()),
    "currency": (_maybe(st.sampled_from(["USD", "EUR", "GBP", "JPY"])), currencies()),
    **{name: (_maybe(GOOD_TEXT), text()) for name in TEXT_FIELDS},
    "args": (st.one_of(st.none(), GOOD_STRUCT), structs()),
    "agent_id": (st.one_of(st.sampled_from(["bot-1", "agent:7@acme/x", "a" * 128]),
                           st.from_regex(AGENT_ID, fullmatch=True)),
                 st.one_of(st.sampled_from(["", "a" * 129, "-x", "bot 1", "bøt"]), text(12))),
    "session_id": (_maybe(GOOD_TEXT), text()),
    "requester_id": (_maybe(GOOD_TEXT), text()),
    "user_id": (_maybe(GOOD_TEXT), text()),
    "rationale": (_maybe(GOOD_TEXT), text()),
    "input_hash": (_maybe(st.just("sha256:" + "a" * 64)),
                   st.sampled_from(["sha256:" + "A" * 64, "sha256:", "md5:x", "sha256:" + "a" * 65, " "])),
    "mode": (st.sampled_from(MODES), st.sampled_from([-1, 5, 99, 2**31 - 1])),
    "idempotency_key": (_maybe(st.uuids().map(str)), text()),
    "correlation_id": (_maybe(GOOD_TEXT), text()),
    "confidence": (st.one_of(st.none(), st.floats(0, 1)), st.floats()),
    "context": (st.one_of(st.none(), GOOD_STRUCT), structs()),
}


@st.composite
def decide_requests(draw) -> Generated:
    hostile = set(draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=draw(st.sampled_from([0, 0, 1, 1, 2, 3])),
                                unique=True)))
    v = {name: draw(pair[name in hostile]) for name, pair in FIELDS.items()}
    action = common_pb2.Action(type=v["type"], amount=v["amount"], currency=v["currency"],
                               **{name: v[name] for name in TEXT_FIELDS})
    if v["args"] is not None:
        action.args.CopyFrom(to_struct(v["args"]))
    req = decision_pb2.DecideRequest(
        action=action, agent=decision_pb2.AgentRef(id=v["agent_id"], session_id=v["session_id"]),
        actors=decision_pb2.Actors(requester_id=v["requester_id"], user_id=v["user_id"]),
        rationale=v["rationale"], input_hash=v["input_hash"], mode=v["mode"],
        idempotency_key=v["idempotency_key"], correlation_id=v["correlation_id"])
    if v["confidence"] is not None:
        req.confidence = v["confidence"]
    if v["context"] is not None:
        req.context.CopyFrom(to_struct(v["context"]))
    return Generated(req, v["args"], v["context"])


def judge(g: Generated, err: grpc.RpcError | None, what: str) -> C:
    """Check one answer against the oracle; return its code."""
    expected = expected_problems(g)
    key = g.request.idempotency_key
    if err is None:
        assert not expected, f"{what} accepted a request the rules refuse ({sorted(expected)})"
        return C.OK
    r = refusal(err)
    if r.code == C.ALREADY_EXISTS and key in USED_KEYS:
        assert_typed(r, {C.ALREADY_EXISTS}, what)
        return r.code
    assert_typed(r, {C.INVALID_ARGUMENT}, what)
    assert expected, f"{what} refused a request the rules accept: {r.message}"
    stray = [f for f in r.fields if not any(f == e or f.startswith(e + ".") or f.startswith(e + "[")
                                            for e in expected)]
    assert not stray, f"{what} blamed {stray}, the rules flag {sorted(expected)}: {r.message}"
    return r.code


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=decide_requests())
def test_decide_and_explain_accept_exactly_the_valid_requests(served, g: Generated) -> None:
    decisions = decision_pb2_grpc.DecisionServiceStub(served.channel)
    policies = policy_pb2_grpc.PolicyServiceStub(served.channel)
    with served.clean_log():
        try:
            d = decisions.Decide(g.request, metadata=served.md(), timeout=30)
            err = None
        except grpc.RpcError as e:
            d, err = None, e
        code = judge(g, err, "Decide")
        event(f"decide {code.name}")
        if g.request.idempotency_key:
            USED_KEYS.add(g.request.idempotency_key)
        if d is not None:
            assert d.decision_id.startswith("dec_") and d.correlation_id == g.request.correlation_id
            assert d.outcome in (common_pb2.OUTCOME_ALLOW, common_pb2.OUTCOME_DENY,
                                 common_pb2.OUTCOME_REQUIRE_APPROVAL)
        try:
            policies.ExplainDecision(policy_pb2.ExplainDecisionRequest(request=g.request), metadata=served.md(),
                                     timeout=30)
            explained = C.OK
        except grpc.RpcError as e:
            explained = judge(g, e, "ExplainDecision")
        if code != C.ALREADY_EXISTS:
            assert explained == code, f"Decide said {code.name}, ExplainDecision {explained.name}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(decide_requests(), min_size=1, max_size=4))
def test_decide_stream_answers_valid_batches_and_refuses_bad_ones(served, batch: list[Generated]) -> None:
    for g in batch:
        g.request.idempotency_key = ""  # replays are Decide's business; here only validity counts
    stub = decision_pb2_grpc.DecisionServiceStub(served.channel)
    bad = set().union(*(expected_problems(g) for g in batch))
    with served.clean_log():
        replies = stub.DecideStream(iter([g.request for g in batch]), metadata=served.md(), timeout=60)
        got = []
        try:
            got.extend(replies)
        except grpc.RpcError as err:
            r = refusal(err)
            assert_typed(r, {C.INVALID_ARGUMENT}, "DecideStream")
            assert bad, f"DecideStream refused a valid batch: {r.message}"
            assert any(f.startswith(e) for f in r.fields for e in bad), (r.fields, sorted(bad))
            return
        assert not bad, f"DecideStream decided a batch with bad fields {sorted(bad)}"
        assert len(got) == len(batch)


@settings(max_examples=100, deadline=None)
@given(amount=amounts(), currency=currencies())
def test_amount_and_currency_are_accepted_exactly_as_documented(served, amount: str, currency: str) -> None:
    """Amounts: ASCII decimal strings ≥ 0, ≤ 18 digits before and 8 after the point; currencies:
    3 upper-case ASCII letters. Everything else is INVALID_ARGUMENT naming the field."""
    g = Generated(decision_pb2.DecideRequest(action=common_pb2.Action(type="payment", amount=amount, currency=currency),
                                             agent=decision_pb2.AgentRef(id="bot-1")), None, None)
    stub = decision_pb2_grpc.DecisionServiceStub(served.channel)
    with served.clean_log():
        try:
            stub.Decide(g.request, metadata=served.md(), timeout=30)
            err = None
        except grpc.RpcError as e:
            err = e
        judge(g, err, "Decide")
