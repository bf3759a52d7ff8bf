"""Create or upgrade the schema to the newest migration: safe to run at every start.

Concurrent callers are serialized by the database itself, so when several replicas start at
once one migrates and the others wait, then find nothing left to do: on PostgreSQL by a
transaction-scoped advisory lock, on SQLite by `BEGIN IMMEDIATE`. Each upgrade runs in one
transaction (both databases have transactional DDL), so a failed migration leaves nothing
half-done. A database already at `HEAD_REVISION` is recognised with one query, without loading
Alembic, which is most of what a start would otherwise spend here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from gavel.adapters.db.engine import SqliteSynchronous, make_engine
from gavel.adapters.db.errors import is_unavailable, unavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0006"  # the newest script in migrations/versions (a test checks that Alembic agrees)
MIGRATION_LOCK_KEY = 0x67_61_76_65_6C_64_62  # "gaveldb": the pg_advisory_xact_lock key
_SQLITE_MIGRATION_BUSY_TIMEOUT_MS = 120_000  # another process may be migrating


def alembic_config(url: str) -> Config:
    """An Alembic configuration for `url` without any alembic.ini (also for `command.revision`)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    return config


def migrate(url: str, *, sqlite_synchronous: SqliteSynchronous = "NORMAL") -> None:
    """Upgrade the database at `url` to the newest schema, creating it (and its directory) if needed.

    Raises StoreUnavailable when the database cannot be reached.
    """
    engine = make_engine(
        url,
        sqlite_synchronous=sqlite_synchronous,
        pool_size=1,
        sqlite_busy_timeout_ms=_SQLITE_MIGRATION_BUSY_TIMEOUT_MS,
    )
    try:
        if _at_head(engine):
            return
        from alembic import command

        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except Exception as error:
        if is_unavailable(error):
            raise unavailable(error) from error
        raise
    finally:
        engine.dispose()


def _at_head(engine: Engine) -> bool:
    """Whether the database records `HEAD_REVISION` (False for a new one, without the table)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    except DBAPIError as error:
        if is_unavailable(error) and "no such table" not in str(error):
            raise
        return False
