"""The SQL adapter: tables, repositories, unit of work, migrations and the store (SQLite, PostgreSQL).

Importing it builds nothing; the composition root calls `migrate(url)` and then `SqlStore(url)`.
"""

from gavel.adapters.db.engine import make_engine, sqlite_url
from gavel.adapters.db.migrate import migrate
from gavel.adapters.db.store import SqlStore

__all__ = ["SqlStore", "make_engine", "migrate", "sqlite_url"]
