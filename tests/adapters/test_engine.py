"""make_engine: SQLite settings, real transactions around savepoints, and the URLs it accepts."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from gavel.adapters.db import make_engine, migrate, sqlite_url
from gavel.adapters.db.columns import ExactDecimal, UtcMicroseconds


@pytest.mark.parametrize(("setting", "pragma_value"), [("NORMAL", 1), ("FULL", 2)])
def test_sqlite_connections_are_configured(tmp_path: Path, setting: str, pragma_value: int) -> None:
    engine = make_engine(sqlite_url(tmp_path / "a" / "b" / "gavel.db"), sqlite_synchronous=setting)
    try:
        with engine.connect() as connection:
            pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    finally:
        engine.dispose()
    assert pragma == {"journal_mode": "wal", "synchronous": pragma_value, "foreign_keys": 1, "busy_timeout": 5000}
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_sqlite_synchronous_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NORMAL` or `FULL"):
        make_engine(sqlite_url(tmp_path / "gavel.db"), sqlite_synchronous="OFF")


def test_a_released_savepoint_is_still_undone_with_its_transaction(tmp_path: Path) -> None:
    # The bug of sqlite3's legacy transaction control: SAVEPOINT outside a real BEGIN.
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            with connection.begin_nested():
                connection.execute(text("INSERT INTO tenants VALUES ('t', 'n', 0)"))
            transaction.rollback()
            assert connection.execute(text("SELECT count(*) FROM tenants")).scalar() == 0
    finally:
        engine.dispose()


def test_a_sqlite_writer_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "gavel.db")
    migrate(url)
    writer = make_engine(url, sqlite_busy_timeout_ms=50)
    reader = make_engine(url, read_only=True, sqlite_busy_timeout_ms=50)
    try:
        with writer.connect() as first, first.begin():
            with reader.connect() as connection, connection.begin():  # readers are never blocked
                assert connection.execute(text("SELECT count(*) FROM tenants")).scalar() == 0
            with writer.connect() as second, pytest.raises(Exception, match="database is locked"):
                second.begin()
    finally:
        writer.dispose()
        reader.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///x.db?mode=ro", "unexpected options"),
        ("mysql://u@h/db", "unsupported database url"),
        ("postgresql+psycopg2://u@h/db", "unsupported PostgreSQL driver"),
    ],
)
def test_unsupported_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_engine(url)


def test_plain_postgresql_urls_use_psycopg() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_column_types_are_exact() -> None:
    instant, decimal = UtcMicroseconds(), ExactDecimal()
    for value in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, 0, 1, tzinfo=timezone(timedelta(hours=-3, minutes=-30))),
    ):
        stored = instant.process_bind_param(value, None)
        assert isinstance(stored, int)
        loaded = instant.process_result_value(stored, None)
        assert loaded == value and loaded.tzinfo is UTC
    for text_value in ("0", "-0", "0.10", "1E+3", "-123456789012345678901234567890.000000001"):
        loaded = decimal.process_result_value(decimal.process_bind_param(Decimal(text_value), None), None)
        assert str(loaded) == text_value
