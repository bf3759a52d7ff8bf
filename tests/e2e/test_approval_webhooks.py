"""Every outcome reaches the webhooks (issue 14): `approval.resolved` for each way an approval
ends or moves (approved, modified, denied, expired, escalated) and one `authorization.finalized`
per decision with its final state, delivered by a real server to a real HTTP receiver that checks
every signature. The outbox rows are written in the transaction of the change: they are in the
store when the call returns, and a refused change writes none. Subscriptions name only events
that something emits: `incident.opened` and unknown names are refused with the known list."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import grpc
import pytest

from gavel.v1 import approval_pb2, common_pb2, decision_pb2
from tests.e2e.helpers import expect_error, request
from tests.e2e.test_approvals import add_keys, resolve
from tests.rest.test_delivery import Receiver

RULES = """package refunds
scope action.type == "refund"
rule small allow "refund.small" when action.amount <= 100
rule medium require_approval "refund.medium"
  when { action.amount > 100
    action.amount <= 5000 }
  route { role: "finance_manager", approvals: 1, timeout: 1h, on_timeout: deny, escalate_to: "finance_director" }
rule huge deny "refund.huge" when action.amount > 5000
rule quick require_approval "refund.quick"
  when action.subtype == "expiring"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: deny }
rule lenient require_approval "refund.lenient"
  when action.subtype == "lenient"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: allow }
rule bumped require_approval "refund.bumped"
  when action.subtype == "bumped"
  route { role: "finance_manager", approvals: 1, timeout: 1s, on_timeout: escalate,
    escalate_to: "finance_director" }
"""
KNOWN = sorted(["agent.status_changed", "approval.recorded", "approval.requested", "approval.resolved",
                "authorization.decided", "authorization.finalized", "execution.confirmed", "execution.failed",
                "reconciliation.completed"])


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "refunds.rules").write_text(RULES)
    return d


@pytest.fixture
def settings_overrides() -> dict:
    return {"webhook_allow_private": True, "webhook_retry_base_seconds": 0.05}


@pytest.fixture
async def rest(harness):
    from gavel.adapters.rest.server import RestServer

    add_keys(harness, ("manager", ["finance_manager"], "mia"), ("director", ["finance_director"], "dora"))
    server = RestServer(harness.runtime, harness.runtime.egress, None)
    port = await server.start("127.0.0.1:0")
    async with aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{port}", session
    await server.stop()


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def subscribe(h, rest, receiver: Receiver, events: list[str]) -> str:
    base, http = rest
    async with http.post(f"{base}/v1/webhooks", json={"url": receiver.url(), "events": events},
                         headers={"Authorization": f"Bearer {h.keys['admin_test']}",
                                  "Idempotency-Key": "sub-" + "-".join(events)}) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    receiver.secret = created["secret"]
    return created["id"]


def received(receiver: Receiver) -> list[dict]:
    """Each delivery once (delivery is at-least-once), every signature checked."""
    out, seen = [], set()
    for x in receiver.requests:
        assert x.valid, "a delivery with a bad signature"
        body = json.loads(x.body)
        assert x.headers["X-Gavel-Event"] == body["type"] and x.headers["X-Gavel-Delivery-Id"] == body["id"]
        if body["id"] not in seen:
            seen.add(body["id"])
            out.append(body)
    return out


def of(receiver: Receiver, kind: str, decision_id: str) -> list[dict]:
    """The data of `kind` deliveries about the decision, in ledger order (they may arrive in any)."""
    found = [b["data"] for b in received(receiver) if b["type"] == kind and b["data"]["decision_id"] == decision_id]
    return sorted(found, key=lambda data: data["sequence"])


async def until(predicate, seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for deliveries"
        await asyncio.sleep(0.05)


def outbox(h, endpoint_id: str) -> list[dict]:
    """The endpoint's outbox rows as the store holds them, delivered or not."""
    rows = h.runtime.store.run_sync(lambda uow: uow.deliveries.recent(endpoint_id, 1000))
    return [json.loads(d.body) for d in rows]


async def test_every_approval_outcome_and_final_state_is_delivered(harness, rest, receiver) -> None:
    h = harness
    endpoint = await subscribe(h, rest, receiver, ["approval.resolved", "authorization.finalized"])

    async def ask(amount: str, **kw) -> decision_pb2.Decision:
        return await h.decisions.Decide(request(type_="refund", amount=amount, **kw), metadata=h.md("agent"))

    approved, denied, modified, escalated = (await ask("600"), await ask("700"), await ask("800"), await ask("900"))
    refused = await ask("1000")
    expiring, lenient, bumped = (await ask("10", subtype="expiring"), await ask("10", subtype="lenient"),
                                 await ask("10", subtype="bumped"))
    allowed, denied_at_once = await ask("50"), await ask("9000")

    await resolve(h, "manager", approved.approval.approval_id, approval_pb2.RESOLUTION_ACTION_APPROVE, note="ok")
    await resolve(h, "manager", denied.approval.approval_id, approval_pb2.RESOLUTION_ACTION_DENY, note="fraud")
    await resolve(h, "manager", modified.approval.approval_id, approval_pb2.RESOLUTION_ACTION_MODIFY,
                  note="partial", modified_action=common_pb2.Action(amount="250"))
    await resolve(h, "manager", escalated.approval.approval_id, approval_pb2.RESOLUTION_ACTION_ESCALATE,
                  note="above me")
    # the rows are in the outbox when the call returns: written with the change
    rows = [b for b in outbox(h, endpoint) if b["data"]["decision_id"] == escalated.decision_id]
    assert [(b["type"], b["data"]["status"]) for b in rows] == [("approval.resolved", "escalated")]
    # a refused change writes nothing
    await expect_error(resolve(h, "manager", refused.approval.approval_id, approval_pb2.RESOLUTION_ACTION_MODIFY,
                               modified_action=common_pb2.Action(amount="9000")),
                       grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
    assert [b for b in outbox(h, endpoint) if b["data"]["decision_id"] == refused.decision_id] == []
    await resolve(h, "director", escalated.approval.approval_id, approval_pb2.RESOLUTION_ACTION_DENY, note="no")

    everything = (approved, denied, modified, escalated, expiring, lenient, bumped, allowed, denied_at_once)
    await until(lambda: all(of(receiver, "authorization.finalized", d.decision_id) for d in everything))

    def resolved(d) -> list[tuple]:
        return [(x["status"], x.get("state"), x.get("note")) for x in of(receiver, "approval.resolved", d.decision_id)]

    assert resolved(approved) == [("approved", "approved", "ok")]
    assert resolved(denied) == [("denied", "denied", "fraud")]
    assert resolved(modified) == [("modified", "approved", "partial")]
    assert of(receiver, "approval.resolved", modified.decision_id)[0]["approved_action"]["amount"] == "250"
    assert resolved(escalated) == [("escalated", None, "above me"), ("denied", "denied", "no")]
    assert resolved(expiring) == [("expired", "expired", None)]
    assert resolved(lenient) == [("approved", "approved", None)]
    assert resolved(bumped) == [("escalated", None, "timeout"), ("expired", "expired", None)]
    assert of(receiver, "approval.resolved", bumped.decision_id)[0]["to_role"] == "finance_director"
    assert resolved(allowed) == [] and resolved(denied_at_once) == []

    finals = {d.decision_id: of(receiver, "authorization.finalized", d.decision_id) for d in everything}
    assert all(len(f) == 1 for f in finals.values()), finals  # exactly one final word per decision
    state = {d: f[0]["state"] for d, f in finals.items()}
    assert [state[d.decision_id] for d in everything] == [
        "approved", "denied", "approved", "denied", "expired", "approved", "expired", "approved", "denied"]
    final_modified = finals[modified.decision_id][0]
    assert final_modified["approved_action"]["amount"] == "250" and final_modified["approval_status"] == "modified"
    assert final_modified["outcome"] == "require_approval" and final_modified["agent_id"] == "bot-1"
    assert final_modified["reason_code"] == "refund.medium" and final_modified["note"] == "partial"
    assert "approved_action" not in finals[approved.decision_id][0]
    at_once = finals[denied_at_once.decision_id][0]
    assert (at_once["outcome"], at_once["reason_code"], at_once["enforced"]) == ("deny", "refund.huge", True)
    assert finals[allowed.decision_id][0]["outcome"] == "allow"
    # the refused MODIFY left its task pending: no word about that decision yet
    assert of(receiver, "approval.resolved", refused.decision_id) == []
    assert of(receiver, "authorization.finalized", refused.decision_id) == []
    # nothing was sent that the endpoint did not subscribe to
    assert Counter(b["type"] for b in received(receiver)).keys() == {"approval.resolved", "authorization.finalized"}


async def test_subscriptions_name_only_events_that_are_emitted(harness, rest, receiver) -> None:
    base, http = rest
    headers = {"Authorization": f"Bearer {harness.keys['admin_test']}"}
    for n, events in enumerate((["incident.opened"], ["approval.resolved", "approval.denied"])):
        async with http.post(f"{base}/v1/webhooks", json={"url": receiver.url(), "events": events},
                             headers={**headers, "Idempotency-Key": f"bad-{n}"}) as r:
            body = await r.json()
        assert r.status == 400 and body["error"]["code"] == "INVALID_REQUEST", body
        unknown = sorted(set(events) - set(KNOWN))
        assert body["error"]["message"].startswith(f"unknown events: {', '.join(unknown)}; known events: ")
        listed = body["error"]["message"].split("; known events: ", 1)[1].split(", ")
        assert sorted(listed) == KNOWN
        assert body["error"]["fields"][0]["field"] == "events"
    endpoint = await subscribe(harness, rest, receiver, ["authorization.finalized", "approval.resolved"])
    async with http.put(f"{base}/v1/webhooks/{endpoint}", json={"events": ["incident.opened"]}, headers=headers) as r:
        assert r.status == 400 and "known events: " in (await r.json())["error"]["message"]
    async with http.put(f"{base}/v1/webhooks/{endpoint}", json={"events": KNOWN}, headers=headers) as r:
        assert r.status == 200 and sorted((await r.json())["events"]) == KNOWN
