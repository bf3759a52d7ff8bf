"""PostgreSQL LISTEN: wake this replica's event streams when any replica commits ledger events.

Every ledger append on PostgreSQL runs `pg_notify('gavel_ledger', …)`, delivered at commit. A
replica keeps one dedicated connection listening and calls `wake()` on each notification;
streams then read what is new from the store (the catch-up read), so a notification lost while
reconnecting costs at most the streams' poll interval, never an event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from gavel.adapters.db.repositories import LEDGER_CHANNEL

log = logging.getLogger("gavel.listen")


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (query options kept)."""
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    parts.update({k: v for k, v in u.query.items() if isinstance(v, str)})
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in parts.items() if v is not None})


async def listen_forever(url: str, wake: Callable[[], None], retry_seconds: float = 1.0) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo(url), autocommit=True) as conn:
                await conn.execute(f"LISTEN {LEDGER_CHANNEL}")
                wake()  # catch up on anything committed while we were not listening
                async for _ in conn.notifies():
                    wake()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: streams fall back to polling meanwhile
            log.warning("LISTEN connection lost (%s); retrying", exc)
            await asyncio.sleep(retry_seconds)
