"""Tenant and environment isolation over the REST shim of a real server, for EVERY route.

The routes are read from the aiohttp application's router; each (method, path) must be classified
in `ROUTES`, so a new route fails `test_every_route_is_classified` until it has a probe. A route
that takes the id of tenant A's resource (acme / test), called by another tenant (globex) or by
A's other environment (acme / live), answers 404 / NOT_FOUND with the same body as for an id of
the same shape that never existed; A's resources are unchanged afterwards.

The shim has no token routes (tokens are spent over gRPC only); a route added for them would
fail the classification test until it gets a probe here.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import pytest

from gavel.adapters.rest.app import build_app
from gavel.v1 import approval_pb2
from tests.e2e.helpers import request
from tests.security.support import add_key, bearer, same_shape, start_rest
from tests.security.test_isolation_grpc import approvals

PUBLIC_URL = "https://93.184.216.34/hook"  # a literal public address: accepted without DNS


@dataclass
class RestWorld:
    admin: str  # the key of the tenant + environment that owns this world
    webhook_id: str = ""
    delivery_id: str = ""
    approval_id: str = ""
    snapshot: dict | None = None  # the webhook as its owner read it


async def call(http: aiohttp.ClientSession, method: str, url: str, headers: dict, body: dict | None = None):
    async with http.request(method, url, headers=headers, json=body) as r:
        text = await r.text()
        return r.status, text


async def make_world(h, http, base: str, admin: str, agent_md) -> RestWorld:
    w = RestWorld(admin)
    status, _ = await call(http, "POST", f"{base}/v1/webhooks", bearer(h.keys[admin], f"mk-{admin}"),
                           {"url": PUBLIC_URL, "events": ["authorization.decided"], "description": admin})
    assert status == 201
    async with http.get(f"{base}/v1/webhooks", headers=bearer(h.keys[admin])) as r:
        (hook,) = (await r.json())["webhooks"]
    w.webhook_id = hook["id"]
    # disabled, so the worker fails its deliveries at once instead of trying the network
    async with http.put(f"{base}/v1/webhooks/{w.webhook_id}", json={"enabled": False},
                        headers=bearer(h.keys[admin])) as r:
        assert r.status == 200
    async with http.post(f"{base}/v1/webhooks/{w.webhook_id}/test", headers=bearer(h.keys[admin], f"t-{admin}")) as r:
        assert r.status == 202
        w.delivery_id = (await r.json())["delivery_id"]
    pending = await h.decisions.Decide(request(amount="600"), metadata=agent_md)
    w.approval_id = pending.approval.approval_id
    async with http.get(f"{base}/v1/webhooks/{w.webhook_id}", headers=bearer(h.keys[admin])) as r:
        w.snapshot = await r.json()
    return w


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the router's canonical path
    kind: str  # owned | scoped | public
    fills: tuple[tuple[str, str], ...] = ()  # owned: {name} → "a" (A's id) or "mine" (the caller's own)
    body: dict | None = None
    idempotent_post: bool = False
    as_approver: bool = False


WEBHOOK = "/v1/webhooks/{id}"
DELIVERIES = "/v1/webhooks/{id}/deliveries"
REDELIVER = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"
RESOLVE = "/v1/approvals/{id}/resolve"

ROUTES: list[Route] = [
    Route("GET", "/healthz", "public"),
    Route("HEAD", "/healthz", "public"),
    Route("GET", "/.well-known/jwks.json", "public"),
    Route("HEAD", "/.well-known/jwks.json", "public"),
    Route("POST", "/v1/webhooks", "scoped"),
    Route("GET", "/v1/webhooks", "scoped"),
    Route("HEAD", "/v1/webhooks", "scoped"),
    Route("GET", WEBHOOK, "owned", (("id", "a"),)),
    Route("HEAD", WEBHOOK, "owned", (("id", "a"),)),
    Route("PUT", WEBHOOK, "owned", (("id", "a"),), {"enabled": True, "url": "https://93.184.216.34/stolen"}),
    Route("DELETE", WEBHOOK, "owned", (("id", "a"),)),
    Route("POST", "/v1/webhooks/{id}/test", "owned", (("id", "a"),), idempotent_post=True),
    Route("GET", DELIVERIES, "owned", (("id", "a"),)),
    Route("HEAD", DELIVERIES, "owned", (("id", "a"),)),
    Route("POST", REDELIVER, "owned", (("id", "a"), ("delivery_id", "a")), idempotent_post=True),
    # the caller's own endpoint with A's delivery id: ids from two tenants must not combine
    Route("POST", REDELIVER, "owned", (("id", "mine"), ("delivery_id", "a")), idempotent_post=True),
    *[Route("POST", RESOLVE, "owned", (("id", "a"),), body, idempotent_post=True, as_approver=True)
      for body in ({"action": "APPROVE"}, {"action": "DENY"},
                   {"action": "MODIFY", "modified_action": {"amount": "550"}},
                   {"action": "ESCALATE", "escalate_to": "cfo"})],
]


async def test_every_route_is_classified(harness) -> None:
    """A new REST route fails here until it has an isolation probe in ROUTES."""
    app = build_app(harness.runtime, harness.runtime.egress, None)
    served = {(r.method, r.resource.canonical) for r in app.router.routes()}
    classified = {(r.method, r.path) for r in ROUTES}
    assert served == classified, sorted(served ^ classified)


def world_id(world: RestWorld, name: str) -> str:
    return {"id": world.webhook_id, "delivery_id": world.delivery_id}[name]


CALLERS = {"tenant": ("globex_test", "globex", "test"), "env": ("admin_live", "acme", "live")}


@pytest.mark.parametrize("caller", sorted(CALLERS))
async def test_rest_routes_answer_not_found_for_tenant_a_ids(harness, caller) -> None:
    h = harness
    admin, tenant, env = CALLERS[caller]
    approver = add_key(h, f"{caller}_approver", tenant=tenant, environment=env, roles=("finance_manager", "cfo"),
                       principal="mallory")
    rest = await start_rest(h)
    problems: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            base = rest.base
            a = await make_world(h, http, base, "admin_test", h.md("agent"))
            me = await make_world(h, http, base, admin, h.md(admin))
            for n, route in enumerate(ROUTES):
                key = approver if route.as_approver else h.keys[admin]
                label = f"{route.method} {route.path} {route.body or ''}"
                if route.kind == "owned":
                    real_path = fake_path = route.path
                    real_ids, fake_ids = [], []
                    for name, whose in route.fills:
                        if name == "id" and route.path == RESOLVE:
                            real = a.approval_id
                        else:
                            real = world_id(a if whose == "a" else me, name)
                        fake = same_shape(real) if whose == "a" else real
                        real_path = real_path.replace("{" + name + "}", real)
                        fake_path = fake_path.replace("{" + name + "}", fake)
                        if whose == "a":
                            real_ids.append(real)
                            fake_ids.append(fake)
                    answers = []
                    for i, path in enumerate((real_path, fake_path)):
                        headers = bearer(key, f"k{n}-{i}" if route.idempotent_post else None)
                        answers.append(await call(http, route.method, base + path, headers, route.body))
                    (status, text), (fake_status, fake_text) = answers
                    for real, fake in zip(real_ids, fake_ids, strict=True):
                        text, fake_text = text.replace(real, "<id>"), fake_text.replace(fake, "<id>")
                    if status != 404 or (route.method != "HEAD" and '"NOT_FOUND"' not in text):
                        problems.append(f"{label}: A's id answered {status} {text}")
                    elif (status, text) != (fake_status, fake_text):
                        problems.append(f"{label}: A's id answered {status} {text}; a made-up id {fake_status} "
                                        f"{fake_text}")
                elif route.kind == "scoped" and route.method in ("GET", "HEAD"):
                    async with http.request(route.method, base + route.path, headers=bearer(key)) as r:
                        text = await r.text()
                        if r.status != 200 or a.webhook_id in text or (route.method == "GET" and me.webhook_id
                                                                       not in text):
                            problems.append(f"{label}: {r.status} {text}")
                elif route.kind == "scoped":  # creating: the caller's own namespace, a new id
                    async with http.post(base + route.path, headers=bearer(key, f"new-{n}"),
                                         json={"url": PUBLIC_URL, "events": ["approval.requested"]}) as r:
                        made = await r.json()
                        if r.status != 201 or made["id"] in (a.webhook_id, me.webhook_id):
                            problems.append(f"{label}: {r.status} {made}")
                else:  # public: answered without a key, and nothing of any tenant in it
                    async with http.request(route.method, base + route.path) as r:
                        text = await r.text()
                        # /healthz is 503 here: this shim runs without the gRPC server beside it
                        if r.status not in (200, 503) or any(i in text for i in (a.webhook_id, a.approval_id)):
                            problems.append(f"{label}: {r.status} {text} without a key")
            # A's things are as they were
            async with http.get(f"{base}/v1/webhooks/{a.webhook_id}", headers=bearer(h.keys["admin_test"])) as r:
                assert r.status == 200 and await r.json() == a.snapshot
            async with http.get(f"{base}{DELIVERIES.replace('{id}', a.webhook_id)}",
                                headers=bearer(h.keys["admin_test"])) as r:
                deliveries = (await r.json())["deliveries"]
            assert [d["delivery_id"] for d in deliveries] == [a.delivery_id]
            listed = await approvals(h).ListApprovals(approval_pb2.ListApprovalsRequest(), metadata=h.md("auditor"))
            (task,) = [t for t in listed.approvals if t.approval_id == a.approval_id]
            assert task.status == approval_pb2.APPROVAL_STATUS_PENDING and not task.steps
    finally:
        await rest.server.stop()
    assert not problems, "\n".join(problems)
