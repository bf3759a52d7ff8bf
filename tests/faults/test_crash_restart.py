"""kill -9 of `gavel serve` in the middle of a decision load, then a restart — on a SQLite file,
and on PostgreSQL in a schema of its own when GAVEL_TEST_DATABASE_URL is set.

After the restart:
- every decision a client got an answer for is readable (GetDecision) and in the ledger;
- every token the store issued — also those of decisions committed but never answered — burns
  exactly once; tokens burned before the kill are refused; a burn in flight at the kill either
  happened (refused now) or did not (burns now), never both;
- the ledger verifies (VerifyLedger) and an evidence pack verifies offline (`gavel verify`);
- an approval pending at the kill is still listed and resolvable; approvals whose timeout fell
  due while the server was down expire after the restart (their `approval.expired` events are
  dated after it);
- webhooks the receiver refused before the kill (503) are delivered after it, each under the
  delivery id it had before (at least once, deduplicable). (Only `approval.requested` is
  subscribed, one decision in eight: a backlog of a few dozen. A backlog of hundreds drains far
  slower than the receiver answers — see `test_webhook_backlog_after_a_restart_drains_promptly`.)

(tests/e2e/test_crash.py is the quick SQLite-only version of the first three points.)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import UTC, datetime

import grpc
import pytest

from gavel.v1 import (
    approval_pb2,
    approval_pb2_grpc,
    common_pb2,
    decision_pb2,
    decision_pb2_grpc,
    evidence_pb2,
    evidence_pb2_grpc,
)
from tests.e2e.helpers import error_info, request
from tests.faults.serve import GAVEL, Serve, WebhookReceiver, md, postgres_schema

OK = grpc.StatusCode
ANSWERED_BEFORE_KILL = 150
QUICK_TIMEOUT = 2.0  # the `quick` rule's approval timeout (tests/e2e/helpers.py PAYMENT_RULES)
WEBHOOKS = {"GAVEL_WEBHOOK_RETRY_BASE_SECONDS": "0.2", "GAVEL_WEBHOOK_RETRY_CAP_SECONDS": "1",
            "GAVEL_WEBHOOK_MAX_ATTEMPTS": "100", "GAVEL_WEBHOOK_TIMEOUT_SECONDS": "3"}
DOMAIN_ERRORS = {OK.ALREADY_EXISTS, OK.PERMISSION_DENIED, OK.INVALID_ARGUMENT, OK.NOT_FOUND,
                 OK.FAILED_PRECONDITION, OK.RESOURCE_EXHAUSTED}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request):
    if request.param == "sqlite":
        yield ""
    else:
        with postgres_schema() as url:
            yield url


async def eventually(predicate, seconds: float, what: str, tick: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = await predicate()
        if got:
            return got
        await asyncio.sleep(tick)
    raise AssertionError(f"{what}: not within {seconds:g} s")


async def ledger(evidence, keys) -> list[evidence_pb2.LedgerEvent]:
    size = (await evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md(keys, "auditor"))).checked
    events = []
    async for e in evidence.StreamEvents(evidence_pb2.StreamEventsRequest(from_sequence=1),
                                         metadata=md(keys, "auditor")):
        events.append(e)
        if len(events) == size:
            break
    return events


@pytest.mark.slow
async def test_kill_minus_nine_mid_load_then_restart_loses_nothing(serve, database_url, tmp_path) -> None:
    server: Serve = serve(database_url=database_url, env_extra=WEBHOOKS)
    keys = await server.provision()
    agent, alice = md(keys, "agent"), md(keys, "alice")
    server.start()
    await server.wait_serving()
    receiver = await WebhookReceiver(status=503).start()  # refuses everything until the restart
    try:
        await receiver.subscribe(server, ["approval.requested"])

        answered: list[decision_pb2.Decision] = []
        burned: set[str] = set()  # tokens whose ConsumeToken was answered before the kill
        burning: set[str] = set()  # a ConsumeToken sent, never answered
        errors: list[grpc.StatusCode] = []
        async with grpc.aio.insecure_channel(server.addr) as channel:
            decisions = decision_pb2_grpc.DecisionServiceStub(channel)
            waiting = await decisions.Decide(request(amount="500"), metadata=agent)  # 1 h timeout
            assert waiting.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL

            async def decide_forever() -> None:
                n = 0
                while True:
                    n += 1
                    amount = "500" if n % 8 == 0 else "12.50"  # one in eight waits for an approval
                    try:
                        answered.append(await decisions.Decide(request(amount=amount), metadata=agent, timeout=5))
                    except grpc.aio.AioRpcError as err:
                        errors.append(err.code())
                        return  # the server died under this call: it was never answered

            async def burn_every_other() -> None:
                index = 0
                while True:
                    if index >= len(answered):
                        await asyncio.sleep(0.002)
                        continue
                    token = answered[index].decision_token
                    index += 2
                    if not token:
                        continue
                    try:
                        burning.add(token)
                        await decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token), metadata=agent,
                                                     timeout=5)
                        burning.discard(token)
                        burned.add(token)
                    except grpc.aio.AioRpcError as err:
                        errors.append(err.code())
                        return

            workers = [asyncio.create_task(decide_forever()) for _ in range(8)]
            workers.append(asyncio.create_task(burn_every_other()))

            async def loaded() -> bool:
                return len(answered) >= ANSWERED_BEFORE_KILL

            await eventually(loaded, 60, "the load")
            # approvals that fall due while the server is down: created, then the kill at once
            quick = [await decisions.Decide(request(amount="20", subtype="expiring"), metadata=agent)
                     for _ in range(3)]
            due = time.monotonic() + QUICK_TIMEOUT
            assert all(q.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL for q in quick)
            server.kill()
            await asyncio.wait_for(asyncio.gather(*workers), 30)
        assert not DOMAIN_ERRORS.intersection(errors), errors  # only the kill failed calls
        assert len(answered) >= ANSWERED_BEFORE_KILL and burned
        refused_before = {d.delivery_id for d in receiver.seen}

        await asyncio.sleep(max(0.0, due + 0.5 - time.monotonic()))  # down past the quick timeouts
        restarted_at = datetime.now(UTC)
        receiver.status = 200
        server.start()
        await server.wait_serving()

        async with grpc.aio.insecure_channel(server.addr) as channel:
            decisions = decision_pb2_grpc.DecisionServiceStub(channel)
            evidence = evidence_pb2_grpc.EvidenceServiceStub(channel)
            approvals = approval_pb2_grpc.ApprovalServiceStub(channel)

            # -- every answered decision is there, as it was answered
            for d in [waiting, *answered, *quick]:
                got = await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=d.decision_id),
                                                  metadata=agent)
                assert (got.decision_id, got.evidence_event_id, got.outcome) == (
                    d.decision_id, d.evidence_event_id, d.outcome)

            # -- the ledger holds them all and verifies; so does an evidence pack, offline
            verdict = await evidence.VerifyLedger(evidence_pb2.VerifyLedgerRequest(), metadata=md(keys, "auditor"))
            assert verdict.ok, verdict.message
            events = await ledger(evidence, keys)
            recorded = {json.loads(e.payload_json).get("decision_id") for e in events if e.type == "decision.recorded"}
            assert {d.decision_id for d in answered} <= recorded
            pack = await evidence.GetEvidencePack(evidence_pb2.GetEvidencePackRequest(
                decision_id=answered[-1].decision_id), metadata=md(keys, "auditor"))
            jwks = await evidence.GetPublicKeys(evidence_pb2.GetPublicKeysRequest(), metadata=md(keys, "auditor"))
            (tmp_path / "pack.json").write_text(pack.pack_json)
            (tmp_path / "jwks.json").write_text(jwks.jwks_json)
            checked = subprocess.run([*GAVEL, "verify", str(tmp_path / "pack.json"), "--jwks",
                                      str(tmp_path / "jwks.json")], capture_output=True, text=True, timeout=60)
            assert checked.returncode == 0, checked.stdout + checked.stderr

            # -- every token the store issued burns once, or was burned (before the kill) already
            tokens = {}
            for decision_id in recorded:
                got = await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=decision_id),
                                                  metadata=agent)
                if got.decision_token:
                    tokens[got.decision_token] = decision_id
            assert {d.decision_token for d in answered if d.decision_token} <= set(tokens)
            assert len(tokens) > len(answered) / 2

            async def burn(token: str) -> str:
                try:
                    await decisions.ConsumeToken(decision_pb2.ConsumeTokenRequest(token=token), metadata=agent)
                    return "burned"
                except grpc.aio.AioRpcError as err:
                    assert err.code() == OK.ALREADY_EXISTS, (err.code(), err.details())
                    return error_info(err)[0]

            gate = asyncio.Semaphore(16)

            async def twice(token: str) -> tuple[str, str]:
                async with gate:
                    return await burn(token), await burn(token)

            outcomes = dict(zip(tokens, await asyncio.gather(*(twice(t) for t in tokens)), strict=True))
            for token, (first, second) in outcomes.items():
                assert second == "DECISION_TOKEN_REUSED", tokens[token]
                if token in burned:
                    assert first == "DECISION_TOKEN_REUSED", tokens[token]
                elif token not in burning:
                    assert first == "burned", tokens[token]  # no call ever burned it: it must burn now
                else:
                    assert first in ("burned", "DECISION_TOKEN_REUSED")

            # -- the approvals due while the server was down expired after the restart
            async def expired():
                states = [(await decisions.GetDecision(decision_pb2.GetDecisionRequest(decision_id=q.decision_id),
                                                       metadata=agent)).state for q in quick]
                return all(s == decision_pb2.DECISION_STATE_EXPIRED for s in states)

            await eventually(expired, 15, "approvals due during the outage expire after the restart")
            expiries = [e for e in await ledger(evidence, keys) if e.type == "approval.expired"]
            assert {json.loads(e.payload_json).get("decision_id") for e in expiries} >= {q.decision_id for q in quick}
            assert all(e.created_at.ToDatetime(tzinfo=UTC) >= restarted_at for e in expiries)

            # -- the approval pending at the kill is still there, and resolves
            listed = await approvals.ListApprovals(approval_pb2.ListApprovalsRequest(
                status=approval_pb2.APPROVAL_STATUS_PENDING), metadata=alice)
            assert waiting.approval.approval_id in {a.approval_id for a in listed.approvals}
            resolved = await approvals.ResolveApproval(approval_pb2.ResolveApprovalRequest(
                approval_id=waiting.approval.approval_id, action=approval_pb2.RESOLUTION_ACTION_APPROVE),
                metadata=alice)
            assert resolved.status == approval_pb2.APPROVAL_STATUS_APPROVED
            final = [d async for d in decisions.WaitDecision(decision_pb2.WaitDecisionRequest(
                decision_id=waiting.decision_id), metadata=agent, timeout=15)][-1]
            assert final.state == decision_pb2.DECISION_STATE_APPROVED and final.decision_token

        # -- webhooks refused before the kill arrive after the restart, under the same ids
        awaiting = {d.decision_id for d in (waiting, *quick, *answered)
                    if d.outcome == common_pb2.OUTCOME_REQUIRE_APPROVAL}
        assert len(awaiting) > 10

        async def all_delivered():
            return awaiting <= set(receiver.delivered("approval.requested"))

        await eventually(all_delivered, 30, "every webhook delivered after the restart", tick=0.25)
        assert all(d.signature_ok for d in receiver.seen)
        ids_of: dict[tuple[str, str], set[str]] = {}
        for d in receiver.seen:
            ids_of.setdefault((d.kind, d.decision_id), set()).add(d.delivery_id)
        assert all(len(ids) == 1 for ids in ids_of.values()), "a decision's delivery id changed across retries"
        resumed = refused_before & {d.delivery_id for d in receiver.seen if d.answered == 200}
        assert resumed, "no delivery refused before the kill was delivered after it"
        assert "Traceback" not in server.log().rpartition("--- start 2 ---")[2]
    finally:
        await receiver.stop()


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(  # not strict: a kill that finds no leased row lets it pass
    "rows the killed worker had leased (held or in flight: ~40 of 200 here) stay leased for the whole lease, "
    "timeout + 30 s (adapters/rest/delivery.py LEASE_MARGIN_SECONDS), so they arrive ~33 s after the kill; the "
    "rest now drain in ~1.5 s (an endpoint not yet measured is no longer paced at the 1 s prior). Needs short "
    "leases renewed by the live worker (a heartbeat) or a lease owner the new worker can recognise"))
async def test_webhook_backlog_after_a_restart_drains_promptly(serve) -> None:
    """200 deliveries wait in the outbox (the receiver answered 503) when the server is killed.
    After the restart the receiver answers at once; at 4 requests in flight per endpoint, sending
    them takes about a second (as it does when the receiver recovers without a restart).
    Allowed: 8 s."""
    server: Serve = serve(env_extra=WEBHOOKS)
    keys = await server.provision()
    server.start()
    await server.wait_serving()
    receiver = await WebhookReceiver(status=503).start()
    try:
        await receiver.subscribe(server, ["authorization.decided"])
        async with grpc.aio.insecure_channel(server.addr) as channel:
            batch = [request(amount="10", correlation_id=f"backlog-{n}") for n in range(200)]
            answered = [d async for d in decision_pb2_grpc.DecisionServiceStub(channel).DecideStream(
                iter(batch), metadata=md(keys, "agent"))]
        assert len(answered) == 200
        server.kill()
        receiver.status = 200
        server.start()
        await server.wait_serving()

        async def drained() -> bool:
            return {d.decision_id for d in answered} <= set(receiver.delivered("authorization.decided"))

        await eventually(drained, 8, "200 waiting webhooks delivered after the restart", tick=0.25)
    finally:
        await receiver.stop()
