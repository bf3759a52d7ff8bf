"""Migrations: they build exactly `tables.metadata`, run twice harmlessly, and run concurrently."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from gavel.adapters.db import make_engine, migrate
from gavel.adapters.db.migrate import alembic_config
from gavel.adapters.db.store import SqlStore
from gavel.adapters.db.tables import metadata


def schema_difference(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_the_migrated_schema_is_exactly_the_tables(empty_database_url: str) -> None:
    migrate(empty_database_url)
    assert schema_difference(empty_database_url) == []
    assert current_revision(empty_database_url) == head(empty_database_url) == "0006"


def test_migrating_twice_changes_nothing(empty_database_url: str) -> None:
    migrate(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO tenants (tenant_id, name, created_at) VALUES ('t', 'n', 0)"))
        tables_before = sorted(inspect(engine).get_table_names())
        migrate(empty_database_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT name FROM tenants")).scalars().all() == ["n"]
        assert sorted(inspect(engine).get_table_names()) == tables_before
    finally:
        engine.dispose()
    assert current_revision(empty_database_url) == "0006"
    assert schema_difference(empty_database_url) == []


def test_concurrent_migrations_from_threads_are_safe(empty_database_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def run() -> None:
        try:
            start.wait()
            migrate(empty_database_url)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(empty_database_url) == "0006"
    assert schema_difference(empty_database_url) == []


_MIGRATE_AT = """
import sys, time
from gavel.adapters.db import migrate
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
migrate(sys.argv[1])
"""


def test_concurrent_migrations_from_processes_are_safe(empty_database_url: str) -> None:
    import time

    start_at = str(time.time() + 2.5)
    children = [
        subprocess.Popen([sys.executable, "-c", _MIGRATE_AT, empty_database_url, start_at],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 4, [err for _, err in outputs]
    assert current_revision(empty_database_url) == "0006"
    assert schema_difference(empty_database_url) == []


def test_alembic_config_needs_no_ini_file(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    assert config.config_file_name is None
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    assert revisions == ["0006", "0005", "0004", "0003", "0002", "0001"]


def test_head_revision_is_alembics_head(empty_database_url: str) -> None:
    from gavel.adapters.db.migrate import HEAD_REVISION

    assert head(empty_database_url) == HEAD_REVISION


def test_a_database_at_head_is_recognised_without_loading_alembic(empty_database_url: str) -> None:
    """A start on an up-to-date database skips Alembic altogether (it is most of a start's
    migration time); a database behind head still gets upgraded."""
    migrate(empty_database_url)
    probe = (
        "import sys; from gavel.adapters.db import migrate; migrate(sys.argv[1]); "
        "print('alembic' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe, empty_database_url], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "False"
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
            connection.execute(text("DROP TABLE tenant_settings"))
            connection.execute(text("ALTER TABLE api_keys DROP COLUMN agents"))
    finally:
        engine.dispose()
    migrate(empty_database_url)
    assert current_revision(empty_database_url) == "0006"
    assert schema_difference(empty_database_url) == []


def test_keys_made_before_agent_binding_are_unbound_after_the_upgrade(empty_database_url: str) -> None:
    """0006 adds `api_keys.agents`: a key that existed before it reads back bound to no agent."""
    config = alembic_config(empty_database_url)
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0005")
            connection.execute(text(
                "INSERT INTO api_keys (key_id, tenant_id, environment, roles, principal, description, secret_hash, "
                "created_at) VALUES ('kold', 't', 'test', '[\"agent\"]', 'bot', '', :hash, 0)"), {"hash": b"x" * 32})
    finally:
        engine.dispose()
    migrate(empty_database_url)
    assert schema_difference(empty_database_url) == []
    store = SqlStore(empty_database_url)
    try:
        key = store.run_sync(lambda uow: uow.keys.get("kold"))
    finally:
        asyncio.run(store.close())
    assert key.roles == ("agent",) and key.agents == ()
