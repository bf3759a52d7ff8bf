"""Which database errors mean "the store is unavailable", and how they are reported.

Unavailable means: retrying later can succeed without changing the request — the server is
down or restarting, the connection dropped, the pool is exhausted, the SQLite file is locked,
read-only, moved or missing, or PostgreSQL chose this transaction as a deadlock victim.
Anything else (a constraint the code should have prevented, a bad statement) is a bug and is
raised unchanged so that it is seen as one.
"""

from __future__ import annotations

from sqlalchemy import exc

from gavel.app.ports import StoreUnavailable

_READ_ONLY_TRANSACTION = "25006"  # PostgreSQL: a hot standby, e.g. right after a failover


def is_unavailable(error: BaseException) -> bool:
    if isinstance(error, StoreUnavailable):
        return True
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, exc.OperationalError | exc.InterfaceError):
            return True
        if getattr(error.orig, "sqlstate", None) == _READ_ONLY_TRANSACTION:
            return True
        # sqlite3.DatabaseError itself ("file is not a database", "disk image is malformed").
        return type(error) is exc.DatabaseError
    return False


_LOST_RACE = {"40P01", "40001"}  # deadlock_detected, serialization_failure


def lost_race(error: BaseException) -> bool:
    """PostgreSQL chose this transaction as a deadlock or serialization victim: retrying the
    whole transaction (after its locks are gone) is the cure."""
    return isinstance(error, exc.DBAPIError) and getattr(error.orig, "sqlstate", None) in _LOST_RACE


def unavailable(error: BaseException) -> StoreUnavailable:
    """A StoreUnavailable that says what went wrong, without SQL text or parameters."""
    if isinstance(error, StoreUnavailable):
        return StoreUnavailable(str(error))
    cause = error.orig if isinstance(error, exc.DBAPIError) and error.orig is not None else error
    detail = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return StoreUnavailable(f"the database is unavailable: {detail}")


def translated(error: BaseException) -> BaseException:
    """`error` as a caller should see it: StoreUnavailable if it is about availability, and a
    value a column type refused (a naive datetime, a float amount) as its own ValueError or
    TypeError rather than SQLAlchemy's wrapper."""
    if is_unavailable(error):
        return unavailable(error)
    if type(error) is exc.StatementError and isinstance(error.orig, ValueError | TypeError):
        return error.orig
    return error
