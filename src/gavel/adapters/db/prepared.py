"""The store's frequent statements, rendered once per dialect and run on the driver's cursor.

A decision writes a token, a decision row, a ledger event and moves the chain head; building
each of those as a SQLAlchemy Core statement (cache key, compiled-cache lookup, parameter and
result processing) cost several times what SQLite itself spends on them. Here each statement's
SQL text and its column processors are made once per (dialect, table, shape) and then run with
a plain parameter tuple on the driver connection underneath SQLAlchemy's — the same connection
and the same transaction, so nothing changes about atomicity.

Values go through the columns' own processors (`UtcMicroseconds`, `ExactDecimal`,
`CanonicalJson`, …), so what is stored is exactly what Core would store. Driver errors are
wrapped the way SQLAlchemy wraps them (`sqlalchemy.exc.DBAPIError` subclasses with `.orig`), so
`gavel.adapters.db.errors` classifies them as before, and a connection that the error left
unusable is invalidated so that the next unit reconnects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, exc

from gavel.adapters.db.engine import sqlite_file_trouble

Processor = Callable[[Any], Any] | None
_SHAPES: dict[tuple[str, str, str, tuple[str, ...], str], _Shape] = {}


class _Shape:
    """One statement on one table for one dialect: its SQL text and its columns' processors."""

    __slots__ = ("sql", "bind", "names", "result")

    def __init__(self, sql: str, bind: list[Processor], names: tuple[str, ...], result: list[Processor]):
        self.sql, self.bind, self.names, self.result = sql, bind, names, result


def _shape(connection: Connection, table: Table, kind: str, keys: tuple[str, ...], extra: str = "") -> _Shape:
    dialect = connection.dialect
    cache_key = (dialect.name, dialect.driver, table.name, keys, kind + extra)
    shape = _SHAPES.get(cache_key)
    if shape is not None:
        return shape
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = list(table.columns)
    names = tuple(column.name for column in columns)
    result = [column.type.result_processor(dialect, None) for column in columns]
    if kind == "insert":
        sql = (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
               "ON CONFLICT DO NOTHING")
        bind = [column.type.bind_processor(dialect) for column in columns]
    elif kind == "select":
        where = " AND ".join(f"{key} = {mark}" for key in keys)
        sql = f"SELECT {', '.join(names)} FROM {table.name} WHERE {where}{extra}"
        bind = [table.columns[key].type.bind_processor(dialect) for key in keys]
    elif kind == "update":  # keys: the SET columns, then "|", then the WHERE columns
        split = keys.index("|")
        sets, wheres = keys[:split], keys[split + 1:]
        sql = (f"UPDATE {table.name} SET {', '.join(f'{name} = {mark}' for name in sets)} "
               f"WHERE {' AND '.join(f'{key} = {mark}' for key in wheres)}{extra}")
        bind = [table.columns[name].type.bind_processor(dialect) for name in (*sets, *wheres)]
    else:  # pragma: no cover - the kinds above are all this module builds
        raise ValueError(kind)
    shape = _SHAPES[cache_key] = _Shape(sql, bind, names, result)
    return shape


def _bound(processors: list[Processor], values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(value if process is None or value is None else process(value)
                 for process, value in zip(processors, values))


def execute(connection: Connection, sql: str, params: Sequence[Any]) -> Any:
    """Run `sql` with positional `params` on the driver connection of `connection`; the cursor."""
    driver = connection.connection.driver_connection
    try:
        if connection.dialect.name == "postgresql":
            return driver.execute(sql, params, prepare=True)
        return driver.execute(sql, params)
    except connection.dialect.loaded_dbapi.Error as error:
        raise _wrapped(connection, sql, params, error) from error


def _wrapped(connection: Connection, sql: str, params: Sequence[Any], error: Exception) -> exc.DBAPIError:
    dialect = connection.dialect
    disconnect = dialect.is_disconnect(error, connection.connection.dbapi_connection, None) or (
        dialect.name == "sqlite" and sqlite_file_trouble(error))
    if disconnect:
        connection.invalidate(error)
    return exc.DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error,
                                   connection_invalidated=disconnect, dialect=dialect)


def insert_unique(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT the row `values` (every column, by name) unless its key exists: whether it went in."""
    shape = _shape(connection, table, "insert", ())
    row = tuple(values[name] for name in shape.names)
    return execute(connection, shape.sql, _bound(shape.bind, row)).rowcount == 1


def select_one(connection: Connection, table: Table, keys: dict[str, Any], *, for_update: bool = False
               ) -> dict[str, Any] | None:
    """The row of `table` whose `keys` columns equal the given values (or None), as {column: value}.
    `for_update` row-locks it on PostgreSQL (SQLite's single writer needs no lock)."""
    lock = " FOR UPDATE" if for_update and connection.dialect.name == "postgresql" else ""
    names = tuple(keys)
    shape = _shape(connection, table, "select", names, lock)
    row = execute(connection, shape.sql, _bound(shape.bind, tuple(keys.values()))).fetchone()
    if row is None:
        return None
    return {name: value if process is None or value is None else process(value)
            for name, process, value in zip(shape.names, shape.result, row)}


def update(connection: Connection, table: Table, values: dict[str, Any], keys: dict[str, Any], *,
           condition: str = "") -> int:
    """UPDATE `table` SET `values` WHERE the `keys` columns equal the given values (and the SQL
    `condition`, a constant text); the number of rows changed."""
    shape = _shape(connection, table, "update", (*values, "|", *keys), condition and f" AND {condition}")
    return execute(connection, shape.sql, _bound(shape.bind, (*values.values(), *keys.values()))).rowcount


def select_all(connection: Connection, table: Table, keys: dict[str, Any], *, order_by: str) -> list[dict[str, Any]]:
    """Every row of `table` whose `keys` columns equal the given values, ordered by `order_by`
    (column names, as SQL)."""
    shape = _shape(connection, table, "select", tuple(keys), f" ORDER BY {order_by}")
    rows = execute(connection, shape.sql, _bound(shape.bind, tuple(keys.values()))).fetchall()
    return [{name: value if process is None or value is None else process(value)
             for name, process, value in zip(shape.names, shape.result, row)} for row in rows]


def run(connection: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a statement written for both dialects with `?` marks (rendered as `%s` on PostgreSQL);
    the number of rows it changed."""
    if connection.dialect.paramstyle != "qmark":
        sql = _pyformat(sql)
    return execute(connection, sql, params).rowcount


_PYFORMAT: dict[str, str] = {}


def _pyformat(sql: str) -> str:
    rendered = _PYFORMAT.get(sql)
    if rendered is None:
        rendered = _PYFORMAT[sql] = sql.replace("%", "%%").replace("?", "%s")
    return rendered
