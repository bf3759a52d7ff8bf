"""Background upkeep that must happen even when nobody calls: releasing the budget held by
decision tokens that expired unused. Runs on a schedule and once at start, so reservations
held by tokens that expired while the server was down are released too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from gavel.app import budgets
from gavel.app.ports import Store, StoreUnavailable, UnitOfWork

log = logging.getLogger("gavel.maintenance")
SWEEP_SECONDS = 5.0
BATCH = 500


def release_expired_tokens(uow: UnitOfWork, now: datetime) -> int:
    """Mark expired, unused tokens `expired` and release their reservations; returns how many."""
    released = 0
    for token in uow.tokens.expired_issued(now, BATCH):
        if uow.tokens.expire(token.jti):
            budgets.settle(uow, token.decision_id, None)
            released += 1
    return released


async def sweep_forever(store: Store, clock, interval: float = SWEEP_SECONDS) -> None:
    while True:
        with contextlib.suppress(StoreUnavailable):
            count = await store.write(lambda uow: release_expired_tokens(uow, clock()))
            if count:
                log.info("released the budget of %d expired, unused decision token(s)", count)
                continue  # there may be more
        await asyncio.sleep(interval)
