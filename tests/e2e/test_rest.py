"""The REST shim over a real server: routes, validation, isolation, the approver callback, and
webhooks delivered to a real HTTP receiver that verifies signatures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import aiohttp
import pytest
from aiohttp import web

from gavel.v1 import common_pb2
from tests.e2e.helpers import request

RULES_WITH_APPROVAL = """package payments
scope action.type == "payment"
rule small allow "payment.small" when action.amount <= 100
rule review require_approval "payment.review" when action.amount > 100
  route { role: "finance_manager" }
"""


@pytest.fixture
def rules_dir(tmp_path):
    d = tmp_path / "rules"
    d.mkdir()
    (d / "payments.rules").write_text(RULES_WITH_APPROVAL)
    return d


@pytest.fixture
def settings_overrides() -> dict:
    return {"webhook_allow_private": True, "webhook_retry_base_seconds": 0.05}


@pytest.fixture
async def rest(harness):
    from gavel.adapters.rest.server import RestServer

    server = RestServer(harness.runtime, harness.runtime.egress, None)
    port = await server.start("127.0.0.1:0")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        yield base, session
    await server.stop()


class Receiver:
    """A webhook receiver that verifies every signature and can be told to fail."""

    def __init__(self) -> None:
        self.secret = ""
        self.requests: list[dict] = []
        self.fail_next = 0
        self.status_when_failing = 503

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        ts = request.headers["X-Gavel-Timestamp"]
        expected = hmac.new(self.secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
        self.requests.append({"body": json.loads(body), "headers": dict(request.headers),
                              "signature_ok": hmac.compare_digest(expected, request.headers["X-Gavel-Signature"]),
                              "fresh": abs(time.time() - int(ts)) < 300})
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=self.status_when_failing)
        return web.Response(status=204)


@pytest.fixture
async def receiver():
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield r
    await runner.cleanup()


def auth(h, who: str = "admin_test", key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {h.keys[who]}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def test_health_and_jwks(harness, rest) -> None:
    base, http = rest
    async with http.get(f"{base}/healthz") as r:
        report = await r.json()
        assert report["store"] == "ok" and "scheduler" in report
    async with http.get(f"{base}/.well-known/jwks.json") as r:
        assert r.status == 200 and (await r.json())["keys"][0]["kty"] == "OKP"


async def test_webhook_crud_and_validation(harness, rest) -> None:
    base, http = rest
    async with http.post(f"{base}/v1/webhooks", json={"url": "https://example.invalid/x", "events": ["bogus"]},
                         headers=auth(harness, key="k0")) as r:
        assert r.status == 400
    async with http.post(f"{base}/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                                      "events": ["authorization.decided"], "description": "siem"},
                         headers=auth(harness, key="k1")) as r:
        assert r.status == 201
        created = await r.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    async with http.get(f"{base}/v1/webhooks", headers=auth(harness)) as r:
        listed = (await r.json())["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    wid = created["id"]
    async with http.put(f"{base}/v1/webhooks/{wid}", json={"enabled": False}, headers=auth(harness)) as r:
        assert r.status == 200 and (await r.json())["enabled"] is False
    for bad_body, expect in (("{not json", "not valid JSON"), (json.dumps({"enabled": "yes"}), "wrong type"),
                             (json.dumps({"colour": "red"}), "unknown field"), (json.dumps([1]), "JSON object"),
                             (json.dumps({"description": "x" * 70_000}), "larger than")):
        async with http.put(f"{base}/v1/webhooks/{wid}", data=bad_body, headers=auth(harness)) as r:
            assert r.status == 400, bad_body
            body = await r.json()
            assert body["error"]["code"] == "INVALID_REQUEST" and expect in body["error"]["message"]
    for url in ("ftp://example.com/x", "not a url", "http://user:pw@example.com/x"):
        async with http.post(f"{base}/v1/webhooks", json={"url": url, "events": ["authorization.decided"]},
                             headers=auth(harness, key=f"u-{url}")) as r:
            assert r.status == 400, url
    async with http.post(f"{base}/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["approval.requested"]},
                         headers=auth(harness)) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "IDEMPOTENCY_KEY_MISSING"
    # another tenant, or the other environment, sees nothing
    for who in ("globex_test", "admin_live"):
        async with http.get(f"{base}/v1/webhooks/{wid}", headers=auth(harness, who)) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "NOT_FOUND"
    async with http.get(f"{base}/v1/webhooks", headers=auth(harness, "agent")) as r:
        assert r.status == 403
    async with http.get(f"{base}/v1/webhooks", headers={"Authorization": "Bearer nope"}) as r:
        assert r.status == 401
    async with http.delete(f"{base}/v1/webhooks/{wid}", headers=auth(harness)) as r:
        assert r.status == 204
    async with http.get(f"{base}/v1/webhooks/{wid}", headers=auth(harness)) as r:
        assert r.status == 404


async def _wait(predicate, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


async def test_decisions_are_delivered_signed_with_retries_and_a_stable_id(harness, rest, receiver) -> None:
    base, http = rest
    async with http.post(f"{base}/v1/webhooks", json={"url": receiver.url, "events": ["authorization.decided"]},
                         headers=auth(harness, key="w1")) as r:
        created = await r.json()
    receiver.secret = created["secret"]
    receiver.fail_next = 2
    d = await harness.decisions.Decide(request(amount="50"), metadata=harness.md("agent"))
    assert d.outcome == common_pb2.OUTCOME_ALLOW
    await _wait(lambda: len(receiver.requests) >= 3)
    first, second, third = receiver.requests[:3]
    assert all(x["signature_ok"] and x["fresh"] for x in receiver.requests)
    ids = {x["headers"]["X-Gavel-Delivery-Id"] for x in (first, second, third)}
    assert len(ids) == 1
    assert third["body"]["type"] == "authorization.decided" and third["body"]["data"]["decision_id"] == d.decision_id
    assert third["headers"]["X-Gavel-Event"] == "authorization.decided"
    async with http.get(f"{base}/v1/webhooks/{created['id']}/deliveries", headers=auth(harness)) as r:
        (delivery,) = (await r.json())["deliveries"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3 and delivery["delivery_id"] in ids
    # a 4xx is not retried; redeliver sends it again
    receiver.fail_next, receiver.status_when_failing = 1, 400
    async with http.post(f"{base}/v1/webhooks/{created['id']}/test", headers=auth(harness, key="t1")) as r:
        assert r.status == 202
        test_delivery = await r.json()
    await _wait(lambda: len(receiver.requests) >= 4)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 4
    async with http.get(f"{base}/v1/webhooks/{created['id']}/deliveries", headers=auth(harness)) as r:
        rows = {x["delivery_id"]: x for x in (await r.json())["deliveries"]}
    assert rows[test_delivery["delivery_id"]]["status"] == "failed"
    assert "400" in rows[test_delivery["delivery_id"]]["last_error"]
    url = f"{base}/v1/webhooks/{created['id']}/deliveries/{test_delivery['delivery_id']}/redeliver"
    async with http.post(url, headers=auth(harness, key="r1")) as r:
        assert r.status == 202
    await _wait(lambda: len(receiver.requests) >= 5)
    assert receiver.requests[4]["headers"]["X-Gavel-Delivery-Id"] == test_delivery["delivery_id"]


async def test_approvers_resolve_over_rest(harness, rest) -> None:
    import os
    from datetime import UTC, datetime

    from gavel.app import admin

    base, http = rest
    now = datetime.now(UTC)
    harness.keys["alice"] = harness.runtime.store.run_sync(lambda uow: admin.create_key(
        uow, None, tenant="acme", environment="test", roles=["finance_manager"], principal="alice", description="",
        now=now, random_bytes=os.urandom))["secret"]
    d = await harness.decisions.Decide(request(amount="500"), metadata=harness.md("agent"))
    url = f"{base}/v1/approvals/{d.approval.approval_id}/resolve"
    async with http.post(url, json={"action": "APPROVE"}, headers=auth(harness, "admin_test", key="a0")) as r:
        assert r.status == 403  # admin does not imply the role
    async with http.post(url, json={"action": "MAYBE"}, headers=auth(harness, "alice", key="a1")) as r:
        assert r.status == 400
    async with http.post(url, json={"action": "APPROVE", "note": "ok"}, headers=auth(harness, "alice", key="a2")) as r:
        assert r.status == 200 and (await r.json())["status"] == "approved"
    async with http.post(url, json={"action": "APPROVE", "note": "ok"}, headers=auth(harness, "alice", key="a2")) as r:
        assert r.status == 200  # the same idempotency key replays the answer
    async with http.post(url, json={"action": "DENY"}, headers=auth(harness, "alice", key="a3")) as r:
        assert r.status == 409 and (await r.json())["error"]["code"] == "INVALID_TRANSITION"
    async with http.post(url, json={"action": "DENY"}, headers=auth(harness, "globex_test", key="a4")) as r:
        assert r.status in (403, 404)
