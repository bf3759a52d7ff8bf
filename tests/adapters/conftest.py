"""Fixtures for the SQL adapter tests: each test gets a fresh database on every backend.

SQLite always runs (a file under tmp_path). PostgreSQL runs when GAVEL_TEST_DATABASE_URL is set
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); each test gets its own schema, made
the connection's search_path through the URL, and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gavel.adapters.db import SqlStore, migrate, sqlite_url

POSTGRES_URL = os.environ.get("GAVEL_TEST_DATABASE_URL", "")

needs_postgres = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="PostgreSQL store tests need GAVEL_TEST_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)",
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=[pytest.mark.postgres, needs_postgres]),
]


def postgres_schema_url(extra_query: dict[str, str] | None = None) -> Iterator[str]:
    """Yield a URL whose connections live in a new, empty schema; drop the schema afterwards."""
    schema = f"t_{uuid.uuid4().hex}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        query = {"options": f"-csearch_path={schema}", **(extra_query or {})}
        yield make_url(POSTGRES_URL).update_query_dict(query).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database with no schema yet (SQLite: not even the file or its directory)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "data" / "gavel.db")
    else:
        yield from postgres_schema_url()


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    migrate(empty_database_url)
    return empty_database_url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(database_url)
    yield store
    await store.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip(needs_postgres.kwargs["reason"])
    yield from postgres_schema_url()
