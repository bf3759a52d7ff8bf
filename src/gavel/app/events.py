"""Waking event streams when the ledger grows.

Writers call `notify()` after a commit; each `StreamEvents` call waits on `wait()` (with a
timeout, so it also picks up events committed by other processes sharing the database) and
then reads what is new from the store. The signal carries no data: the store is the truth.
"""

from __future__ import annotations

import asyncio
import contextlib


class EventSignal:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future] = set()

    def notify(self) -> None:
        for waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        finally:
            self._waiters.discard(waiter)
