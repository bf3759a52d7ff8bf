"""Webhook subscriptions and the outbox.

An outbox row is written by `enqueue`, called from `ledger.record` — that is, inside the unit of
work of the change itself — so there is no event without its change and no change without its
event. Ledger events map to webhook events:

| ledger event | webhook event(s) |
|---|---|
| decision.recorded | authorization.decided; authorization.finalized unless the decision waits for approval |
| approval.requested | approval.requested |
| approval.recorded | approval.recorded |
| approval.escalated | approval.resolved (status `escalated`) |
| approval.resolved, approval.expired | approval.resolved, and authorization.finalized |
| execution.reported | execution.confirmed or execution.failed, and reconciliation.completed |
| agent.status_changed | agent.status_changed |

So every decision sends exactly one `authorization.finalized`, with its final `state` (approved,
denied or expired): at Decide, or when its approval ends.

Every enabled endpoint of the tenant + environment subscribed to the event gets its own delivery
(id `dlv_…`, stable across retries). The body is `{"id", "type", "created_at", "data"}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from gavel.app.errors import FieldViolation, InvalidRequest, NotFound
from gavel.app.ids import new_id
from gavel.app.model import WEBHOOK_EVENTS, Delivery, LedgerEvent, WebhookEndpoint
from gavel.app.ports import UnitOfWork

MAX_ENDPOINTS = 50
MAX_URL = 2048


DECIDED_FIELDS = ("state", "outcome", "reason_code", "agent_id", "mode", "enforced")
ENDED_FIELDS = ("state", "agent_id", "reason_code", "approval_id", "approved_action", "note")


def webhook_events_of(event: LedgerEvent, data: dict) -> list[tuple[str, dict]]:
    """The webhook events a ledger event sends, each with its data."""
    t = event.type
    if t == "decision.recorded":
        kinds = [("authorization.decided", data)]
        if data.get("state") != "pending_approval":
            kinds.append(("authorization.finalized", {k: data[k] for k in DECIDED_FIELDS if k in data}))
        return kinds
    if t in ("approval.requested", "approval.recorded", "agent.status_changed"):
        return [(t, data)]
    if t == "approval.escalated":
        return [("approval.resolved", {**data, "status": "escalated"})]
    if t in ("approval.resolved", "approval.expired"):
        finalized = {k: data[k] for k in ENDED_FIELDS if k in data}
        return [("approval.resolved", data),
                ("authorization.finalized", {**finalized, "outcome": "require_approval",
                                             "approval_status": data.get("status")})]
    if t == "execution.reported":
        first = "execution.confirmed" if data.get("status") == "succeeded" else "execution.failed"
        return [(first, data), ("reconciliation.completed", data)]
    return []


def body_of(delivery_id: str, kind: str, at: datetime, data: dict) -> str:
    return json.dumps({"id": delivery_id, "type": kind, "created_at": at.isoformat(), "data": data},
                      ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def enqueue(uow: UnitOfWork, event: LedgerEvent, data: dict, random_bytes: Callable[[int], bytes]) -> int:
    kinds = webhook_events_of(event, data)
    if not kinds:
        return 0
    endpoints = [e for e in uow.webhooks.list(event.tenant_id, event.environment) if e.enabled]
    count = 0
    for kind, kind_data in kinds:
        for endpoint in endpoints:
            if kind not in endpoint.events:
                continue
            delivery_id = new_id("dlv", event.created_at, random_bytes)
            payload = {**kind_data, "event_id": event.event_id, "sequence": event.sequence}
            if event.subject.startswith("dec_"):
                payload["decision_id"] = event.subject
            uow.deliveries.add(Delivery(
                delivery_id, event.tenant_id, event.environment, endpoint.endpoint_id, kind,
                body_of(delivery_id, kind, event.created_at, payload), "pending", 0, event.created_at, "",
                event.created_at))
            count += 1
    return count


def endpoint_dict(e: WebhookEndpoint, secret: bool = False) -> dict:
    out = {"id": e.endpoint_id, "url": e.url, "events": list(e.events), "enabled": e.enabled,
           "description": e.description, "created_at": e.created_at.isoformat(),
           "updated_at": e.updated_at.isoformat()}
    if secret:
        out["secret"] = e.secret
    return out


def delivery_dict(d: Delivery) -> dict:
    return {"delivery_id": d.delivery_id, "event": d.event, "status": d.status, "attempts": d.attempts,
            "last_error": d.last_error, "created_at": d.created_at.isoformat(),
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            "next_attempt_at": d.next_attempt_at.isoformat() if d.status == "pending" else None}


def validate_events(events: Any) -> tuple[str, ...]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidRequest("events must be a non-empty list of event names",
                             (FieldViolation("events", "a list of: " + ", ".join(WEBHOOK_EVENTS)),))
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown:
        known = ", ".join(WEBHOOK_EVENTS)
        raise InvalidRequest(f"unknown events: {', '.join(unknown)}; known events: {known}",
                             (FieldViolation("events", "known: " + known),))
    return tuple(sorted(set(events)))


def create(uow: UnitOfWork, tenant_id: str, environment: str, url: str, events: tuple[str, ...], description: str,
           now: datetime, random_bytes: Callable[[int], bytes]) -> dict:
    if len(uow.webhooks.list(tenant_id, environment)) >= MAX_ENDPOINTS:
        raise InvalidRequest(f"at most {MAX_ENDPOINTS} webhooks per environment")
    import base64

    secret = "whsec_" + base64.urlsafe_b64encode(random_bytes(32)).decode("ascii").rstrip("=")
    endpoint = WebhookEndpoint(new_id("wh", now, random_bytes), tenant_id, environment, url, events, True,
                               description, secret, now, now)
    uow.webhooks.add(endpoint)
    return endpoint_dict(endpoint, secret=True)


def get(uow: UnitOfWork, tenant_id: str, environment: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = uow.webhooks.get(tenant_id, environment, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook `{endpoint_id}`")
    return endpoint


def update(uow: UnitOfWork, tenant_id: str, environment: str, endpoint_id: str, changes: dict, now: datetime) -> dict:
    endpoint = replace(get(uow, tenant_id, environment, endpoint_id), **changes, updated_at=now)
    uow.webhooks.update(endpoint)
    return endpoint_dict(endpoint)


def send_test(uow: UnitOfWork, tenant_id: str, environment: str, endpoint_id: str, now: datetime,
              random_bytes: Callable[[int], bytes]) -> dict:
    endpoint = get(uow, tenant_id, environment, endpoint_id)
    delivery_id = new_id("dlv", now, random_bytes)
    body = body_of(delivery_id, "webhook.test", now, {"endpoint_id": endpoint.endpoint_id,
                                                     "message": "a test event from Gavel"})
    delivery = Delivery(delivery_id, tenant_id, environment, endpoint.endpoint_id, "webhook.test", body, "pending",
                        0, now, "", now)
    uow.deliveries.add(delivery)
    return delivery_dict(delivery)


def redeliver(uow: UnitOfWork, tenant_id: str, environment: str, endpoint_id: str, delivery_id: str,
              now: datetime) -> dict:
    get(uow, tenant_id, environment, endpoint_id)
    delivery = uow.deliveries.get(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        raise NotFound(f"no delivery `{delivery_id}`")
    again = replace(delivery, status="pending", next_attempt_at=now, lease_until=None, attempts=0, last_error="")
    uow.deliveries.save(again)
    return delivery_dict(again)
