"""Appending to the evidence ledger, inside the unit of work of the change it records.

Every state change writes its event in the same transaction (so there is no change without
its event and no event without its change); the store's group commit batches many events per
transaction. The payload is RFC 8785 canonical JSON:

    {"type", "event_id", "sequence", "tenant", "environment", "at", "subject",
     "decision_id" (for events about a decision), "data": {…}}

and `hash = SHA-256(prev_hash ‖ payload bytes)`, chained per tenant and environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gavel.app import webhooks
from gavel.app.ids import new_id
from gavel.app.model import LedgerEvent
from gavel.app.ports import UnitOfWork
from gavel.ledger.canonical import JsonNumber, canonical_json
from gavel.ledger.chain import ZERO_HASH, event_hash


def json_value(text: str) -> Any:
    """Parse stored canonical JSON back into values that canonicalise to the same text."""
    return json.loads(text, parse_float=lambda s: JsonNumber(float(s)))


def record(uow: UnitOfWork, tenant_id: str, environment: str, *, type: str, subject: str, data: dict,
           at: datetime, random_bytes: Callable[[int], bytes], decision_id: str | None = None,
           event_id: str | None = None) -> LedgerEvent:
    head = uow.ledger.head(tenant_id, environment, lock=True)
    sequence, prev = (head[0] + 1, head[1]) if head is not None else (1, ZERO_HASH)
    event_id = event_id or new_id("evt", at, random_bytes)
    payload: dict[str, Any] = {
        "type": type, "event_id": event_id, "sequence": sequence, "tenant": tenant_id,
        "environment": environment, "at": at.isoformat(), "subject": subject, "data": data,
    }
    if decision_id is not None:
        payload["decision_id"] = decision_id
    text = canonical_json(payload)
    event = LedgerEvent(tenant_id, environment, sequence, event_id, type, subject, text, prev,
                        event_hash(prev, text), at)
    uow.ledger.append(event)
    webhooks.enqueue(uow, event, data, random_bytes)  # the outbox row, in the same transaction
    return event
