"""Background upkeep that must happen even when nobody calls: releasing the budget held by
decision tokens that expired unused. Runs on a schedule and once at start, so reservations
held by tokens that expired while the server was down are released too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import datetime

from gavel.app import budgets, ledger
from gavel.app.ports import Store, StoreUnavailable, UnitOfWork

log = logging.getLogger("gavel.maintenance")
SWEEP_SECONDS = 5.0
BATCH = 500


def release_expired_tokens(uow: UnitOfWork, now: datetime, random_bytes=os.urandom) -> int:
    """Mark expired, unused tokens `expired` and release their reservations; returns how many."""
    released = 0
    expired = sorted(uow.tokens.expired_issued(now, BATCH), key=lambda t: (t.tenant_id, t.environment))
    for token in expired:  # chains in ascending order, as every batch locks them (see Store.write)
        if uow.tokens.expire(token.jti):
            budgets.settle(uow, token.decision_id, None)
            ledger.record(uow, token.tenant_id, token.environment, type="token.expired", subject=token.decision_id,
                          decision_id=token.decision_id, at=now, random_bytes=random_bytes,
                          data={"jti": token.jti, "expired_at": token.expires_at.isoformat(),
                                "budget_released": True})
            released += 1
    return released


def checkpoint_due(uow: UnitOfWork, merkle, keys, issuer: str, now: datetime, every_seconds: float,
                   every_events: int) -> int:
    """Sign a checkpoint for every chain whose last one is older than `every_seconds` or more
    than `every_events` behind; returns how many were made."""
    from gavel.app.evidence import make_checkpoint

    made = 0
    for tenant_id, environment, size in uow.ledger.chains():
        latest = uow.checkpoints.latest(tenant_id, environment)
        behind = size - (latest.tree_size if latest else 0)
        if behind <= 0:
            continue
        age = (now - latest.created_at).total_seconds() if latest else every_seconds
        if age >= every_seconds or behind >= every_events:
            make_checkpoint(uow, merkle, keys, issuer, tenant_id, environment, size, now)
            made += 1
    return made


async def checkpoint_forever(app, every_seconds: float, every_events: int, tick: float = 1.0) -> None:
    while True:
        with contextlib.suppress(StoreUnavailable):
            keys = app.deps.signing.keyset()
            await app.deps.store.write(lambda uow, keys=keys: checkpoint_due(
                uow, app.merkle, keys, app.deps.token_settings.issuer, app.deps.clock(), every_seconds, every_events))
        await asyncio.sleep(tick)


async def approvals_forever(app, tick: float = 0.5) -> None:
    """Apply timeout dispositions within about a second of the due time (and at start, for
    tasks that fell due while the server was down)."""
    while True:
        with contextlib.suppress(StoreUnavailable):
            count = await app.expire_due()
            if count:
                log.info("applied the timeout disposition of %d approval task(s)", count)
                continue
        await asyncio.sleep(tick)


async def sweep_forever(store: Store, clock, interval: float = SWEEP_SECONDS) -> None:
    while True:
        with contextlib.suppress(StoreUnavailable):
            count = await store.write(lambda uow: release_expired_tokens(uow, clock()))
            if count:
                log.info("released the budget of %d expired, unused decision token(s)", count)
                continue  # there may be more
        await asyncio.sleep(interval)
