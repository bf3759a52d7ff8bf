"""DecisionService over a real server: decide, tokens, executions, budgets, modes, errors."""

from __future__ import annotations

import asyncio
import hashlib
import json

import grpc
import nacl.signing
import pytest
from google.protobuf import field_mask_pb2

from gavel.ledger.canonical import canonical_json
from gavel.v1 import agent_pb2, common_pb2, decision_pb2, evidence_pb2
from tests.e2e.helpers import b64url, error_info, expect_error, request, set_minimum_mode, token_parts

OK = grpc.StatusCode


async def register(h, agent_id="bot-1", daily="1000", **kw):
    return await h.agents.RegisterAgent(agent_pb2.RegisterAgentRequest(
        agent_id=agent_id, name="Bot", owner="ops", daily_limit=daily, monthly_limit="50000",
        allowed_actions=["payment", "refund"], **kw), metadata=h.md())


async def test_allow_returns_a_token_anyone_can_verify_with_the_jwks(harness) -> None:
    d = await harness.decisions.Decide(request(amount="120.50"), metadata=harness.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW and d.state == decision_pb2.DECISION_STATE_APPROVED
    assert d.enforced and d.reason_code == "payment.small" and d.decision_id.startswith("dec_")
    assert d.policy.rule == "payments.small" and d.policy.bundle_hash.startswith("sha256:")
    assert json.loads(d.explain.json)["summary"] == d.explain.summary
    header, claims, signing_input, signature = token_parts(d.decision_token)
    assert header["alg"] == "EdDSA" and header["kid"]
    assert claims["decision_id"] == d.decision_id and claims["amount"] == "120.5" and claims["sub"] == "bot-1"
    assert claims["tenant"] == "acme" and claims["env"] == "test" and claims["exp"] - claims["iat"] == 300
    expected_hash = "sha256:" + hashlib.sha256(canonical_json(
        {"type": "payment", "amount": "120.5", "currency": "USD"}).encode()).hexdigest()
    assert claims["args_hash"] == expected_hash
    keys = await harness.evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=harness.md("agent"))
    jwks = json.loads(keys.jwks_json)
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    nacl.signing.VerifyKey(b64url(key["x"])).verify(signing_input, signature)


async def test_deny_and_require_approval_carry_no_token(harness) -> None:
    d = await harness.decisions.Decide(request(currency="JPY"), metadata=harness.md("agent"))
    assert (d.outcome, d.reason_code, d.decision_token) == (common_pb2.OUTCOME_DENY, "currency.unsupported", "")
    assert d.state == decision_pb2.DECISION_STATE_DENIED
    d = await harness.decisions.Decide(request(amount="5000"), metadata=harness.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL and d.decision_token == ""
    assert d.state == decision_pb2.DECISION_STATE_PENDING_APPROVAL
    assert d.approval.role == "finance_manager" and d.approval.approvals_required == 1
    assert d.approval.on_timeout == decision_pb2.TIMEOUT_ACTION_DENY
    assert d.risk.score == 40 and d.risk.tier == decision_pb2.RISK_TIER_MEDIUM
    d = await harness.decisions.Decide(request(type_="unknown_action"), metadata=harness.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_DENY and d.reason_code == "policy.no_match"


async def test_get_decision_is_exact_and_isolated(harness) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    got = await harness.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                              metadata=harness.md("auditor"))
    assert got == d
    for who in ("admin_live", "globex_test"):
        await expect_error(harness.decisions.GetDecision(
            decision_pb2.GetDecisionRequest(decision_id=d.decision_id), metadata=harness.md(who)),
            OK.NOT_FOUND, "NOT_FOUND")


@pytest.mark.parametrize(
    ("req", "reason", "fields"),
    [
        (decision_pb2.DecideRequest(agent=decision_pb2.AgentRef(id="a")), "MISSING_REQUIRED_FIELD", ["action.type"]),
        (decision_pb2.DecideRequest(action=common_pb2.Action(type="payment")), "MISSING_REQUIRED_FIELD", ["agent.id"]),
        (request(amount="-5"), "INVALID_REQUEST", ["action.amount"]),
        (request(amount="1e5"), "INVALID_REQUEST", ["action.amount"]),
        (request(amount="1.123456789"), "INVALID_REQUEST", ["action.amount"]),
        (request(amount="1" * 19), "INVALID_REQUEST", ["action.amount"]),
        (request(currency="usd"), "INVALID_REQUEST", ["action.currency"]),
        (request(rationale="x" * 2001), "INVALID_REQUEST", ["rationale"]),
        (request(confidence=1.5), "INVALID_REQUEST", ["confidence"]),
        (request(input_hash="md5:abc"), "INVALID_REQUEST", ["input_hash"]),
        (request(mode=99), "INVALID_REQUEST", ["mode"]),
    ],
)
async def test_bad_input_is_invalid_argument_with_field_violations(harness, req, reason, fields) -> None:
    got = await expect_error(harness.decisions.Decide(req, metadata=harness.md("agent")),
                             OK.INVALID_ARGUMENT, reason)
    assert got == fields


async def test_oversized_message_is_refused(harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.decisions.Decide(request(rationale="x" * (5 * 1024 * 1024)), metadata=harness.md("agent"))
    assert info.value.code() == OK.RESOURCE_EXHAUSTED


async def test_authentication_and_roles(harness) -> None:
    await expect_error(harness.decisions.Decide(request()), OK.UNAUTHENTICATED, "UNAUTHENTICATED")
    await expect_error(harness.decisions.Decide(request(), metadata=(("authorization", "Bearer sk_test_nope"),)),
                       OK.UNAUTHENTICATED, "UNAUTHENTICATED")
    forged = harness.keys["agent"][:-4] + "AAAA"
    await expect_error(harness.decisions.Decide(request(), metadata=(("x-api-key", forged),)),
                       OK.UNAUTHENTICATED, "UNAUTHENTICATED")
    # x-api-key works as well as Bearer
    await harness.decisions.Decide(request(), metadata=(("x-api-key", harness.keys["agent"]),))
    await expect_error(harness.decisions.Decide(request(), metadata=harness.md("auditor")), OK.PERMISSION_DENIED,
                       "FORBIDDEN")
    await expect_error(harness.decisions.Decide(request(), metadata=harness.md("finance")), OK.PERMISSION_DENIED,
                       "FORBIDDEN")
    await expect_error(harness.agents.ListAgents(agent_pb2.ListAgentsRequest(), metadata=harness.md("agent")),
                       OK.PERMISSION_DENIED, "FORBIDDEN")
    await expect_error(harness.decisions.Decide(request(), metadata=harness.md("platform")), OK.PERMISSION_DENIED,
                       "FORBIDDEN")


async def test_consume_token_checks_in_order(harness) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    _, claims, _, _ = token_parts(d.decision_token)
    token = d.decision_token
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token),
                                                      metadata=harness.md("globex_test")),
                       OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token),
                                                      metadata=harness.md("admin_live")),
                       OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    await expect_error(harness.decisions.ConsumeToken(
        decision_pb2.ConsumeTokenRequest(token=token, args_hash="sha256:" + "0" * 64), metadata=harness.md("agent")),
        OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{signature}"
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=tampered),
                                                      metadata=harness.md("agent")),
                       OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")
    r = await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token,
                                                                              args_hash=claims["args_hash"]),
                                             metadata=harness.md("agent"))
    assert r.valid and r.decision_id == d.decision_id and r.agent_id == "bot-1" and r.action_type == "payment"
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token),
                                                      metadata=harness.md("agent")),
                       OK.ALREADY_EXISTS, "DECISION_TOKEN_REUSED")


async def test_a_token_burns_exactly_once_under_concurrency(harness) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    calls = [harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                            metadata=harness.md("agent")) for _ in range(30)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(wins) == 1 and len(losses) == 29
    assert {error_info(e)[0] for e in losses} == {"DECISION_TOKEN_REUSED"}


async def test_revoked_tokens_are_refused(harness) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    _, claims, _, _ = token_parts(d.decision_token)
    r = await harness.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(jti=claims["jti"]),
                                            metadata=harness.md("agent"))
    assert r.revoked and r.jti == claims["jti"]
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                      metadata=harness.md("agent")),
                       OK.PERMISSION_DENIED, "TOKEN_REVOKED")
    d2 = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    await harness.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(token=d2.decision_token),
                                        metadata=harness.md("agent"))
    await expect_error(harness.decisions.RevokeToken(decision_pb2.RevokeTokenRequest(jti="tok_unknown"),
                                                     metadata=harness.md("agent")), OK.NOT_FOUND, "NOT_FOUND")


@pytest.mark.parametrize("settings_overrides", [{"token_ttl_seconds": 1}])
async def test_expired_tokens_are_refused(harness) -> None:
    d = await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    await asyncio.sleep(2.1)
    await expect_error(harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                                      metadata=harness.md("agent")),
                       OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")


async def test_report_execution_reconciles_once_and_settles_budget(harness) -> None:
    await register(harness, daily="1000")
    d = await harness.decisions.Decide(request(amount="400"), metadata=harness.md("agent"))
    agent = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert agent.spend_today == "400"  # reserved at decide time
    await harness.decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=d.decision_token),
                                         metadata=harness.md("agent"))
    rep = await harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=d.decision_token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="380.00", currency="USD", external_transaction_id="tx-1"), metadata=harness.md("agent"))
    assert rep.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_MISMATCHED
    assert (rep.reconciliation.authorized_amount, rep.reconciliation.executed_amount,
            rep.reconciliation.variance) == ("400", "380", "-20")
    agent = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert agent.spend_today == "380"
    got = await harness.decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                              metadata=harness.md("agent"))
    assert got.state == decision_pb2.DECISION_STATE_EXECUTED
    await expect_error(harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=d.decision_id, decision_token=d.decision_token, status=decision_pb2.EXECUTION_STATUS_SUCCEEDED,
        amount="380.00"), metadata=harness.md("agent")), OK.ALREADY_EXISTS, "ALREADY_REPORTED")

    failed = await harness.decisions.Decide(request(amount="300"), metadata=harness.md("agent"))
    rep = await harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=failed.decision_id, decision_token=failed.decision_token,
        status=decision_pb2.EXECUTION_STATUS_FAILED, error_code="card_declined"), metadata=harness.md("agent"))
    assert rep.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_FAILED
    agent = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert agent.spend_today == "380"  # the failed execution released its reservation

    matched = await harness.decisions.Decide(request(amount="50"), metadata=harness.md("agent"))
    rep = await harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=matched.decision_id, decision_token=matched.decision_token,
        status=decision_pb2.EXECUTION_STATUS_SUCCEEDED, amount="50.00", currency="USD"), metadata=harness.md("agent"))
    assert rep.reconciliation.status == decision_pb2.RECONCILIATION_STATUS_MATCHED
    assert rep.reconciliation.variance == "0"
    other = await harness.decisions.Decide(request(amount="10"), metadata=harness.md("agent"))
    await expect_error(harness.decisions.ReportExecution(decision_pb2.ReportExecutionRequest(
        decision_id=matched.decision_id, decision_token=other.decision_token,
        status=decision_pb2.EXECUTION_STATUS_SUCCEEDED), metadata=harness.md("agent")),
        OK.PERMISSION_DENIED, "DECISION_TOKEN_INVALID")


async def test_concurrent_decisions_never_overshoot_the_daily_limit(harness) -> None:
    await register(harness, daily="1000")
    calls = [harness.decisions.Decide(request(amount="150"), metadata=harness.md("agent")) for _ in range(20)]
    decisions = await asyncio.gather(*calls)
    allowed = [d for d in decisions if d.outcome == common_pb2.OUTCOME_ALLOW]
    assert len(allowed) == 6  # 6 × 150 = 900; a 7th would make 1050
    assert {d.reason_code for d in decisions if d not in allowed} == {"budget.daily_exceeded"}
    agent = await harness.agents.GetAgent(agent_pb2.GetAgentRequest(agent_id="bot-1"), metadata=harness.md())
    assert agent.spend_today == "900"


async def test_modes(harness) -> None:
    """MONITOR and WARN are the operator's choice (the environment's minimum lowered, the agent's
    default mode): then a deny is reported and recorded but does not block. STRICT adds its denials."""
    h = harness
    await set_minimum_mode(h, common_pb2.MODE_MONITOR)
    await register(h, default_mode=common_pb2.MODE_MONITOR)
    d = await h.decisions.Decide(request(currency="JPY"), metadata=h.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_DENY and not d.enforced and d.decision_token
    assert d.state == decision_pb2.DECISION_STATE_APPROVED and not d.warnings and d.mode == common_pb2.MODE_MONITOR
    d = await h.decisions.Decide(request(currency="JPY", mode=common_pb2.MODE_WARN), metadata=h.md("agent"))
    assert not d.enforced and d.decision_token and d.warnings == ["would deny: currency.unsupported"]
    d = await h.decisions.Decide(request(agent="ghost", mode=common_pb2.MODE_STRICT), metadata=h.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_DENY and d.reason_code == "strict.agent_unregistered"
    hashed = "sha256:" + "a" * 64
    d = await h.decisions.Decide(request(mode=common_pb2.MODE_STRICT, input_hash=hashed), metadata=h.md("agent_bot1"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW and d.mode == common_pb2.MODE_STRICT
    d = await h.decisions.Decide(request(type_="refund", mode=common_pb2.MODE_STRICT), metadata=h.md("agent_bot1"))
    assert d.reason_code == "strict.input_unverified"
    d = await h.decisions.Decide(request(type_="payout", mode=common_pb2.MODE_STRICT, input_hash=hashed),
                                 metadata=h.md("agent_bot1"))
    assert d.reason_code == "strict.action_not_allowed"
    d = await h.decisions.Decide(request(mode=common_pb2.MODE_STRICT, input_hash=hashed), metadata=h.md("agent"))
    assert (d.outcome, d.reason_code, d.decision_token) == (common_pb2.OUTCOME_DENY, "strict.agent_unbound", "")


async def test_paused_and_locked_agents_are_refused_before_any_rule(harness) -> None:
    await register(harness)
    for status, reason in ((agent_pb2.AGENT_STATUS_PAUSED, "AGENT_PAUSED"),
                           (agent_pb2.AGENT_STATUS_LOCKED, "AGENT_LOCKED")):
        await harness.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
            agent_id="bot-1", status=status, update_mask=field_mask_pb2.FieldMask(paths=["status"])),
            metadata=harness.md())
        await expect_error(harness.decisions.Decide(request(), metadata=harness.md("agent")),
                           OK.PERMISSION_DENIED, reason)
    a = await harness.agents.UpdateAgent(agent_pb2.UpdateAgentRequest(
        agent_id="bot-1", status=agent_pb2.AGENT_STATUS_ACTIVE, update_mask=field_mask_pb2.FieldMask(paths=["status"])),
        metadata=harness.md())
    assert a.status == agent_pb2.AGENT_STATUS_ACTIVE and a.daily_limit == "1000"
    await harness.decisions.Decide(request(), metadata=harness.md("agent"))


async def test_idempotency_replays_conflicts_and_survives_concurrent_duplicates(harness) -> None:
    first = await harness.decisions.Decide(request(idempotency_key="k1"), metadata=harness.md("agent"))
    again = await harness.decisions.Decide(request(idempotency_key="k1"), metadata=harness.md("agent"))
    assert again == first
    await expect_error(harness.decisions.Decide(request(amount="101", idempotency_key="k1"),
                                                metadata=harness.md("agent")),
                       OK.ALREADY_EXISTS, "IDEMPOTENCY_CONFLICT")
    same = await asyncio.gather(*[harness.decisions.Decide(request(idempotency_key="k2"), metadata=harness.md("agent"))
                                  for _ in range(10)])
    assert len({d.decision_id for d in same}) == 1
    # keys are scoped per tenant and environment
    other_env = await harness.decisions.Decide(request(idempotency_key="k1"), metadata=harness.md("admin_live"))
    assert other_env.decision_id != first.decision_id


async def test_decide_stream_answers_every_request_with_its_correlation_id(harness) -> None:
    async def requests():
        for i in range(300):
            yield request(amount=str(10 + i % 50), correlation_id=f"c-{i}")

    seen = set()
    async for d in harness.decisions.DecideStream(requests(), metadata=harness.md("agent")):
        assert d.outcome == common_pb2.OUTCOME_ALLOW
        seen.add(d.correlation_id)
    assert seen == {f"c-{i}" for i in range(300)}


async def test_decide_stream_ends_with_the_status_of_a_bad_request(harness) -> None:
    async def requests():
        yield request(correlation_id="ok")
        yield request(currency="usd", correlation_id="bad")

    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in harness.decisions.DecideStream(requests(), metadata=harness.md("agent")):
            pass
    assert info.value.code() == OK.INVALID_ARGUMENT and error_info(info.value)[0] == "INVALID_REQUEST"


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_minute": 5}])
async def test_rate_limit_with_trailers(harness) -> None:
    for _ in range(5):
        call = harness.decisions.Decide(request(), metadata=harness.md("agent"))
        await call
        trailers = dict(await call.trailing_metadata())
        assert trailers["x-ratelimit-limit"] == "5"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.decisions.Decide(request(), metadata=harness.md("agent"))
    err = info.value
    assert err.code() == OK.RESOURCE_EXHAUSTED and error_info(err)[0] == "RATE_LIMIT_EXCEEDED"
    trailers = dict(err.trailing_metadata())
    assert trailers["x-ratelimit-remaining"] == "0" and int(trailers["retry-after"]) >= 1
    # another tenant has its own budget
    await harness.decisions.Decide(request(), metadata=harness.md("globex_test"))
