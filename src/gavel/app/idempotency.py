"""Idempotency keys: same key + same request → the original response, nothing re-executed;
same key + different request → IDEMPOTENCY_CONFLICT. Runs inside the write unit, so a
concurrent duplicate waits for the first (the writer serialises them) and then replays it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from gavel.app.errors import IdempotencyConflict
from gavel.app.model import IdempotencyRecord
from gavel.app.ports import Conflict, RetryUnit, UnitOfWork
from gavel.ledger.canonical import canonical_bytes, sha256_hex_digest

T = TypeVar("T")


def request_hash(fields: Any) -> str:
    return sha256_hex_digest(canonical_bytes(fields))


def once(uow: UnitOfWork, *, tenant_id: str, environment: str, operation: str, key: str, fields: Any,
         now: datetime, run: Callable[[], dict], replay: Callable[[dict], dict],
         stored: Callable[[dict], dict] | None = None) -> dict:
    """Run `run` unless this key was seen; return its response dict. What is stored for replays is
    `stored(response)` (the response itself by default): a secret the first caller alone may see
    must never reach the database."""
    if not key:
        return run()
    digest = request_hash(fields)
    seen = uow.idempotency.get(tenant_id, environment, operation, key)
    if seen is not None:
        if seen.request_hash != digest:
            raise IdempotencyConflict(
                f"idempotency key `{key}` was used with a different request",
                metadata={"operation": operation})
        return replay(seen.response)
    response = run()
    try:
        kept = response if stored is None else stored(response)
        uow.idempotency.put(IdempotencyRecord(tenant_id, environment, operation, key, digest, kept, now))
    except Conflict:  # the same key was committed meanwhile (another replica): run again, replay
        raise RetryUnit(f"idempotency key `{key}` was used concurrently") from None
    return response
