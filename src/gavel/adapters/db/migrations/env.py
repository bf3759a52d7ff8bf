"""Alembic's entry point. `gavel.adapters.db.migrate` hands over a connection that is already in
the migration transaction; without one (a developer's own alembic command) an engine is built."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gavel.adapters.db.engine import make_engine
from gavel.adapters.db.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("gavel migrations run against a live database only (no --sql mode)")

given = context.config.attributes.get("connection")
if given is not None:
    run_migrations(given)
else:
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.begin() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()
