"""Engines for SQLite (WAL, one writer) and PostgreSQL (psycopg 3), built only when asked.

SQLite: the sqlite3 driver's own transaction handling is switched off (`isolation_level=None`)
and SQLAlchemy emits BEGIN itself — the documented recipe that makes SAVEPOINT and
transactional DDL work. Writers begin with `BEGIN IMMEDIATE` so they take the write lock up
front (waiting up to the busy timeout) instead of failing halfway through; readers use a
plain deferred BEGIN, and in WAL mode never block the writer. Every checkout verifies that
the connection still holds the file at the database path and that the file is still writable:
a pooled connection would otherwise keep writing into a moved or deleted file, or through a
handle opened before an operator made the file read-only.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import DisconnectionError

SqliteSynchronous = Literal["NORMAL", "FULL"]

SQLITE_BUSY_TIMEOUT_MS = 5_000
POSTGRESQL_CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10

# Errors after which a SQLite connection must be replaced, not reused: its file handle is stale
# (opened read-only, or the file went away) and reconnecting is what lets the store recover.
_SQLITE_FILE_TROUBLE = re.compile(
    r"readonly database|disk i/o error|unable to open|malformed|not a database|no such table", re.IGNORECASE
)

_POSTGRESQL_DEFAULTS: dict[str, Any] = {
    "connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S,
    "application_name": "gavel",
    # Notice a vanished server within about a minute instead of the kernel's two hours.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def sqlite_file_trouble(error: BaseException) -> bool:
    """Whether a SQLite error means the connection's file handle is stale and must be replaced."""
    return isinstance(error, sqlite3.Error) and bool(_SQLITE_FILE_TROUBLE.search(str(error)))


def sqlite_url(path: Path | str) -> str:
    """The database URL of a SQLite file, e.g. for the default `./.gavel/gavel.db`."""
    return URL.create("sqlite", database=str(path)).render_as_string()


def make_engine(
    url: str,
    *,
    sqlite_synchronous: SqliteSynchronous = "NORMAL",
    read_only: bool = False,
    create_missing: bool = True,
    pool_size: int = 2,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    sqlite_autocheckpoint: bool = True,
) -> Engine:
    """Build an engine for `url` (sqlite:///path or postgresql+psycopg://…); connects lazily.

    `read_only` makes a reader engine (deferred BEGIN on SQLite; REPEATABLE READ, READ ONLY
    transactions on PostgreSQL). With `create_missing` false a missing SQLite file is an error
    instead of a new empty database (the store never creates one; `migrate` does).
    `sqlite_autocheckpoint=False` leaves WAL checkpoints to the caller (the store runs them on a
    thread of their own, so that no commit pays for one).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(
            parsed,
            synchronous=sqlite_synchronous,
            read_only=read_only,
            create_missing=create_missing,
            pool_size=pool_size,
            busy_timeout_ms=sqlite_busy_timeout_ms,
            autocheckpoint=sqlite_autocheckpoint,
        )
    if backend == "postgresql":
        return _postgresql_engine(parsed, read_only=read_only, pool_size=pool_size)
    raise ValueError(f"unsupported database url `{parsed}`: use sqlite:///<path> or postgresql+psycopg://…")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return _sqlite_file(parsed)


def _sqlite_file(parsed: URL) -> Path:
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        raise ValueError("an in-memory SQLite database cannot be shared by the store's threads: give a file path")
    if parsed.query:
        raise ValueError(f"unexpected options in the SQLite url `{parsed}`: give a plain sqlite:///<path>")
    return Path(database).absolute()


def _sqlite_engine(
    parsed: URL,
    *,
    synchronous: SqliteSynchronous,
    read_only: bool,
    create_missing: bool,
    pool_size: int,
    busy_timeout_ms: int,
    autocheckpoint: bool,
) -> Engine:
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"sqlite_synchronous must be `NORMAL` or `FULL`, not `{synchronous}`")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ValueError(f"unsupported SQLite driver `{parsed.drivername}`: use sqlite:///<path>")
    path = _sqlite_file(parsed)
    if create_missing:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A URI filename, so that mode=rw can refuse to create a database that is not there.
    file_uri = URL.create(
        "sqlite+pysqlite",
        database=path.as_uri(),
        query={"uri": "true", "mode": "rwc" if create_missing else "rw"},
    )
    engine = create_engine(
        file_uri,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_size=pool_size,
        max_overflow=2,
        pool_timeout=POOL_TIMEOUT_S,
    )
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        identity = sqlite_file_identity(path)
        if identity is not None and not identity[2]:
            # Refuse before touching the WAL: SQLite would create the -wal and -shm files with
            # the database file's read-only mode, and they would stay unwritable after it is fixed.
            raise sqlite3.OperationalError(f"attempt to write a readonly database: `{path}` is not writable")
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, see `begin_transaction`
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            (journal_mode,) = _switch_to_wal(cursor, busy_timeout_ms)
            if str(journal_mode).lower() != "wal":
                raise sqlite3.OperationalError(f"could not switch `{path}` to WAL mode (it stays `{journal_mode}`)")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            if not autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()
        record.info["sqlite_file"] = identity

    @event.listens_for(engine, "checkout")
    def verify_file(dbapi_connection: sqlite3.Connection, record: Any, proxy: Any) -> None:
        if record.info.get("sqlite_file") != sqlite_file_identity(path):
            raise DisconnectionError(f"the database file `{path}` was moved, replaced or changed permissions")

    @event.listens_for(engine, "begin")
    def begin_transaction(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    @event.listens_for(engine, "handle_error")
    def replace_stale_connections(context: ExceptionContext) -> None:
        error = context.original_exception
        if sqlite_file_trouble(error):
            context.is_disconnect = True

    return engine


def sqlite_file_identity(path: Path) -> tuple[int, int, bool] | None:
    """(device, inode, writable) of the database file, or None if it is gone: a connection opened
    on another identity holds a stale handle."""
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino, os.access(path, os.W_OK))


def _postgresql_engine(parsed: URL, *, read_only: bool, pool_size: int) -> Engine:
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername != "postgresql+psycopg":
        raise ValueError(f"unsupported PostgreSQL driver `{parsed.drivername}`: use postgresql+psycopg://")
    connect_args = {name: value for name, value in _POSTGRESQL_DEFAULTS.items() if name not in parsed.query}
    execution_options: dict[str, Any] = {}
    if read_only:
        # A read unit sees one consistent snapshot and cannot write by mistake.
        execution_options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    return create_engine(
        parsed,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=2,
        pool_timeout=POOL_TIMEOUT_S,
        pool_pre_ping=True,
        pool_recycle=1800,
        execution_options=execution_options,
    )


def _switch_to_wal(cursor: sqlite3.Cursor, busy_timeout_ms: int) -> tuple:
    """`PRAGMA journal_mode = WAL`, retried: SQLite answers "database is locked" at once (without
    the busy handler) while another process creates the same new database file."""
    import time

    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            return cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
