"""Bad input the server once failed to refuse clearly (INTERNAL, UNKNOWN, a traceback): one test per
bug the fuzz found, each stating the behaviour we want. All are fixed; a new bug found by the fuzz
gets a test here, marked xfail(strict=True) naming where it lives until it is fixed.

They run against a server of their own (`buggy`), because several of these bugs write
tracebacks to the server log, which the shared server's log must never have.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import duration_pb2

from gavel.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    evidence_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
)
from tests.bad_input.checks import Refusal, assert_typed, refusal
from tests.bad_input.served import ServedGavel
from tests.bad_input.strategies import nested, to_struct

C = grpc.StatusCode


@pytest.fixture(scope="module")
def buggy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGavel]:
    server = ServedGavel(tmp_path_factory.mktemp("known-bugs"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def outcome(fn, request, metadata) -> Refusal | object:
    try:
        return fn(request, metadata=metadata, timeout=30)
    except grpc.RpcError as err:
        return refusal(err)


def invalid_argument(result, field: str | None = None) -> None:
    assert isinstance(result, Refusal), f"accepted: {result}"
    assert_typed(result, {C.INVALID_ARGUMENT})
    if field is not None:
        assert any(f.startswith(field) for f in result.fields), result


def pending_approval(server: ServedGavel) -> str:
    d = decision_pb2_grpc.DecisionServiceStub(server.channel).Decide(decision_pb2.DecideRequest(
        action=common_pb2.Action(type="payment", amount="600", currency="USD"),
        agent=decision_pb2.AgentRef(id="bot-bugs")), metadata=server.md(), timeout=30)
    return d.approval.approval_id


@pytest.mark.parametrize("body", ["corrupt", "deep"])
def test_an_undecodable_request_is_invalid_argument(buggy, body: str) -> None:
    if body == "corrupt":
        payload = b"\xff\xff\xff\xff"
    else:
        req = decision_pb2.DecideRequest(action=common_pb2.Action(type="payment"), agent=decision_pb2.AgentRef(id="a"))
        req.action.args.CopyFrom(to_struct(nested(40)))
        payload = req.SerializeToString()
    call = buggy.channel.unary_unary("/gavel.v1.DecisionService/Decide")
    invalid_argument(outcome(call, payload, buggy.md()))


def test_modify_with_numbers_in_args_is_decided(buggy) -> None:
    change = common_pb2.Action(amount="550")
    change.args.update({"discount": 0.5, "items": [1, 2]})
    result = outcome(approval_pb2_grpc.ApprovalServiceStub(buggy.channel).ResolveApproval,
                     approval_pb2.ResolveApprovalRequest(approval_id=pending_approval(buggy),
                                                         action=approval_pb2.RESOLUTION_ACTION_MODIFY,
                                                         modified_action=change), buggy.md("finance"))
    assert isinstance(result, approval_pb2.Approval), result
    assert result.status == approval_pb2.APPROVAL_STATUS_MODIFIED


@pytest.mark.parametrize("seconds", [-(2**62), 315_576_000_001, 10**11])
def test_replay_refuses_an_out_of_range_since(buggy, seconds: int) -> None:
    from gavel.bundles import build_archive

    archive = build_archive(buggy.workdir / "rules", version="v", author="t", now=datetime(2026, 1, 1, tzinfo=UTC))
    stub = policy_pb2_grpc.PolicyServiceStub(buggy.channel)
    try:
        list(stub.ReplayBundle(policy_pb2.ReplayBundleRequest(bundle=archive, since=duration_pb2.Duration(
            seconds=seconds)), metadata=buggy.md(), timeout=30))
        result = None
    except grpc.RpcError as err:
        result = refusal(err)
    invalid_argument(result, "since")


@pytest.mark.parametrize("method", ["ListApiKeys", "ListBundleHistory"])
def test_a_negative_page_size_is_invalid_argument(buggy, method: str) -> None:
    if method == "ListApiKeys":
        result = outcome(admin_pb2_grpc.AdminServiceStub(buggy.channel).ListApiKeys,
                         admin_pb2.ListApiKeysRequest(tenant="acme", page_size=-1), buggy.md("platform"))
    else:
        result = outcome(policy_pb2_grpc.PolicyServiceStub(buggy.channel).ListBundleHistory,
                         policy_pb2.ListBundleHistoryRequest(page_size=-1), buggy.md())
    invalid_argument(result, "page_size")


@pytest.mark.parametrize("method, token", [
    ("ListBundleHistory", "²"), ("ListBundleHistory", "9" * 30),
    ("WatchApprovals", "²"), ("WatchApprovals", "9" * 30), ("WatchApprovals", "-1"), ("WatchApprovals", "\x00")])
def test_a_malformed_page_token_or_cursor_is_invalid_argument(buggy, method: str, token: str) -> None:
    if method == "ListBundleHistory":
        result = outcome(policy_pb2_grpc.PolicyServiceStub(buggy.channel).ListBundleHistory,
                         policy_pb2.ListBundleHistoryRequest(page_token=token), buggy.md())
        invalid_argument(result, "page_token")
        return
    stream = approval_pb2_grpc.ApprovalServiceStub(buggy.channel).WatchApprovals(
        approval_pb2.WatchApprovalsRequest(cursor=token), metadata=buggy.md("finance"), timeout=30)
    try:
        next(iter(stream))
        result = None
    except grpc.RpcError as err:
        result = refusal(err)
    invalid_argument(result, "cursor")


@pytest.mark.parametrize("case", ["inclusion", "consistency", "api_key"])
def test_every_invalid_argument_names_its_field(buggy, case: str) -> None:
    evidence = evidence_pb2_grpc.EvidenceServiceStub(buggy.channel)
    if case == "inclusion":
        result = outcome(evidence.GetInclusionProof, evidence_pb2.GetInclusionProofRequest(sequence=10**9),
                         buggy.md())
    elif case == "consistency":
        result = outcome(evidence.GetConsistencyProof,
                         evidence_pb2.GetConsistencyProofRequest(first_size=5, second_size=1), buggy.md())
    else:
        result = outcome(admin_pb2_grpc.AdminServiceStub(buggy.channel).CreateApiKey,
                         admin_pb2.CreateApiKeyRequest(tenant="acme", environment=common_pb2.ENVIRONMENT_TEST,
                                                       principal="p" * 300), buggy.md("platform"))
    assert isinstance(result, Refusal) and result.code == C.INVALID_ARGUMENT, result
    assert result.fields, f"no field violations: {result}"


def test_an_error_about_a_long_id_reaches_a_default_client(buggy) -> None:
    with grpc.insecure_channel(buggy.grpc_addr) as plain:  # default client options
        result = outcome(agent_pb2_grpc.AgentServiceStub(plain).GetAgent,
                         agent_pb2.GetAgentRequest(agent_id="é" * 3000), buggy.md())
    assert isinstance(result, Refusal) and result.code == C.NOT_FOUND, result


@pytest.mark.parametrize("case", ["GetAgent", "GetDecision", "RegisterAgent.idempotency_key", "ListApprovals"])
def test_nul_in_any_field_is_invalid_argument(buggy, case: str) -> None:
    if case == "GetAgent":
        result = outcome(agent_pb2_grpc.AgentServiceStub(buggy.channel).GetAgent,
                         agent_pb2.GetAgentRequest(agent_id="a\x00"), buggy.md())
    elif case == "GetDecision":
        result = outcome(decision_pb2_grpc.DecisionServiceStub(buggy.channel).GetDecision,
                         decision_pb2.GetDecisionRequest(decision_id="dec_\x00"), buggy.md())
    elif case == "RegisterAgent.idempotency_key":
        result = outcome(agent_pb2_grpc.AgentServiceStub(buggy.channel).RegisterAgent,
                         agent_pb2.RegisterAgentRequest(agent_id="bot-nul", idempotency_key="k\x00"), buggy.md())
    else:
        result = outcome(approval_pb2_grpc.ApprovalServiceStub(buggy.channel).ListApprovals,
                         approval_pb2.ListApprovalsRequest(page_token="\x00"), buggy.md())
    invalid_argument(result)
