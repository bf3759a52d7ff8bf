"""Every gavel.v1 method, fed generated requests over a real server: every answer is OK or a
typed refusal, never INTERNAL or UNKNOWN, never a crash, never a traceback in the server log.

The messages are built from the request descriptors (strategies.messages): every field of every
request, odd unicode, limits ± 1, unknown enum values, out-of-range timestamps and durations,
deep and wide Structs, and — mixed in — ids that exist, so the calls get past lookups too.

Accepted codes, and why each is a legitimate answer to a well-authenticated request:

- OK: the request was acceptable;
- INVALID_ARGUMENT: bad input (INVALID_REQUEST, MISSING_REQUIRED_FIELD), naming the fields;
- NOT_FOUND: an id that does not exist in the caller's tenant and environment;
- FAILED_PRECONDITION: INVALID_TRANSITION — a resolved approval, a bundle that never ran here;
- ALREADY_EXISTS: a generated idempotency key reused with another body, a second execution
  report, a burned token;
- PERMISSION_DENIED: a forged or foreign token, a method this key may not call (AdminService
  with a tenant key, ResolveApproval with an admin key), a paused or locked agent;
- DEADLINE_EXCEEDED: only for the live streams (WatchApprovals, StreamEvents, WaitDecision on a
  pending decision), which never end by themselves: the test stops listening after 0.3 s.

Never accepted: INTERNAL, UNKNOWN, UNAUTHENTICATED (the keys are valid), RESOURCE_EXHAUSTED
(the rate limit is off and the messages stay under 4 MiB; limits are tested in test_limits.py),
UNAVAILABLE (the store is up).

This runs in the live environment of tenant `acme`, so agents it pauses or locks never disturb
the Decide and approval tests (test environment).
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gavel.bundles import build_archive
from gavel.v1 import (
    admin_pb2,
    agent_pb2,
    approval_pb2,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    policy_pb2,
)
from tests.bad_input.checks import assert_typed, refusal
from tests.bad_input.strategies import messages

C = grpc.StatusCode
TYPED = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.FAILED_PRECONDITION, C.ALREADY_EXISTS, C.PERMISSION_DENIED}
LIVE_STREAMS = {"/gavel.v1.ApprovalService/WatchApprovals", "/gavel.v1.EvidenceService/StreamEvents",
                "/gavel.v1.DecisionService/WaitDecision"}
LIVE_STREAM_SECONDS = 0.3  # a refusal comes at once; an accepted live stream just waits
FILES = (admin_pb2, agent_pb2, approval_pb2, decision_pb2, evidence_pb2, policy_pb2)


# Inputs the fuzz used to steer around while their bugs were open (test_known_bugs.py pins each):
# all fixed, so every method now gets NUL, odd page tokens, negative page sizes and huge durations.


def all_methods() -> list:
    out = []
    for module in FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                out.append(pytest.param(method, id=f"{service.name}.{method.name}"))
    return out


@pytest.fixture(scope="module")
def known(served) -> dict:
    """Ids that exist in acme/live, to mix into the generated requests."""
    md = served.md("live")
    from gavel.v1 import agent_pb2_grpc, policy_pb2_grpc

    agent_pb2_grpc.AgentServiceStub(served.channel).RegisterAgent(
        agent_pb2.RegisterAgentRequest(agent_id="bot-live", daily_limit="1000"), metadata=md, timeout=30)
    decisions = decision_pb2_grpc.DecisionServiceStub(served.channel)

    def decide(amount: str) -> decision_pb2.Decision:
        return decisions.Decide(decision_pb2.DecideRequest(
            action=common_pb2.Action(type="payment", amount=amount, currency="USD"),
            agent=decision_pb2.AgentRef(id="bot-live")), metadata=md, timeout=30)

    allowed, pending = decide("10"), decide("600")
    archive = build_archive(served.workdir / "rules", version="v-fuzz", author="bad-input",
                            now=datetime(2026, 1, 1, tzinfo=UTC))
    published = policy_pb2_grpc.PolicyServiceStub(served.channel).PublishBundle(
        policy_pb2.PublishBundleRequest(bundle=archive), metadata=md, timeout=60)
    return {"decision_ids": [allowed.decision_id, pending.decision_id],
            "approval_id": pending.approval.approval_id, "token": allowed.decision_token,
            "archive": archive, "bundle_hash": published.bundle_hash}


def hints(known: dict) -> dict:
    ids = st.sampled_from(known["decision_ids"])
    bundles = st.one_of(st.just(known["archive"]), st.just(known["archive"][:200]),
                        st.just(gzip.compress(b"not a tar")), st.binary(max_size=64))
    return {
        "decision_id": ids, "approval_id": st.just(known["approval_id"]), "agent_id": st.just("bot-live"),
        "token": st.just(known["token"]), "decision_token": st.just(known["token"]),
        "args_hash": st.just("sha256:" + "0" * 64), "bundle": bundles, "bundle_hash": st.just(known["bundle_hash"]),
        "tenant": st.sampled_from(["acme", "hooks", "nobody"]), "role": st.sampled_from(["finance_manager", "cfo"]),
        "view": st.sampled_from(["generic", "sox", "eu_ai_act", "rbi"]),
        "type": st.sampled_from(["payment", "refund"]),
        "id": st.sampled_from(["bot-live", "bot-2"]),
        "paths": st.sampled_from(["name", "status", "daily_limit", "allowed_actions", "default_mode", "agent_id"]),
        "files.key": st.sampled_from(["p.rules", "dir/q.rules", "data/x.json", "../up.rules", "x.txt"]),
        "files.value": st.sampled_from(["package p\nrule r allow when true\n", "package p\nrule r allow when",
                                        "package p\nrule r allow when action.amout > 1\n"]),
    }


def _invoke(served, method, request, who: str) -> None:
    """Call `method` as the generated stub would; raise grpc.RpcError on a refusal."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    kw = {"request_serializer": request_cls.SerializeToString, "response_deserializer": response_cls.FromString}
    md = served.md(who)
    if method.client_streaming:
        list(served.channel.stream_stream(path, **kw)(iter(request), metadata=md, timeout=60))
        return
    if method.server_streaming:
        stub = served.channel.unary_stream(path, **kw)
        live = path in LIVE_STREAMS
        replies = stub(request, metadata=md, timeout=LIVE_STREAM_SECONDS if live else 60)
        try:
            for count, _ in enumerate(replies, 1):
                if count >= 50:  # enough: a finite stream was answered, a live one is alive
                    replies.cancel()
                    break
        except grpc.RpcError as err:
            if not (live and err.code() == C.DEADLINE_EXCEEDED):
                raise
        return
    served.channel.unary_unary(path, **kw)(request, metadata=md, timeout=60)


@pytest.mark.parametrize("method", all_methods())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_method_answers_generated_requests_with_a_typed_status(served, known, method, data) -> None:
    strategy = messages(method.input_type, hints(known))
    if method.client_streaming:
        request = data.draw(st.lists(strategy, max_size=3))
    else:
        request = data.draw(strategy)
    who = "live"
    if method.containing_service.name == "AdminService":
        who = data.draw(st.sampled_from(["platform", "platform", "live"]))
    with served.clean_log():
        try:
            _invoke(served, method, request, who)
        except grpc.RpcError as err:
            assert_typed(refusal(err), TYPED, method.full_name,
                         needs_fields=True)
