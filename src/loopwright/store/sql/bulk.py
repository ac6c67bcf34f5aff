"""Bulk inserts on the driver's connection: many rows, few statements, new ids back by a key.

Ingest writes items, predictions, decisions and tasks a chunk at a time. SQLAlchemy's
``insertmanyvalues`` builds, compiles and binds such a statement row by row in Python, which
cost more than the database's work; here the statement text is written once per chunk and
the values are bound column by column as SQLAlchemy's types would store them (JSON text,
UTC datetimes, booleans), as :mod:`.plain` does for single statements:

* SQLite: ``INSERT … VALUES (?, …), (?, …) … RETURNING key, id`` (a few hundred rows each);
* PostgreSQL: ``INSERT … SELECT * FROM unnest(%s::type[], …) RETURNING key, id``, one array
  per column sent in binary (the text form quotes every element with a regular expression).

Both run inside the unit of work's transaction, fire ``before_cursor_execute`` listeners (the
statement counters of the tests) and let SQLAlchemy translate driver errors (IntegrityError).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import Boolean, Connection, Float, Integer, Table

from loopwright.store.sql.plain import _SQLITE_TIME, PlainSql, _kind
from loopwright.store.sql.tables import items

SQLITE_PARAMS = 32_766  # SQLite ≥ 3.32's bound-parameter limit
SQLITE_ROWS = 500  # rows per SQLite statement


def insert_many(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: str
) -> dict[Any, int]:
    """Insert ``rows`` (all with the same columns); ``{row[key]: new id}`` (``key`` unique among
    them: SQLite does not promise the order of ``RETURNING`` rows). Columns that are None in
    every row are left to the database (NULL)."""
    names = [n for n in rows[0] if n == key or any(r[n] is not None for r in rows)]
    postgres = conn.dialect.name == "postgresql"
    columns = [_column(table, n, [r[n] for r in rows], postgres) for n in names]
    if postgres:
        return _unnest(conn, table, names, columns, key)
    return _values(conn, table, names, columns, key)


_COLUMNS = ", ".join(c.name for c in items.c)
_BY_EXTERNAL = {  # one array (PostgreSQL) or one JSON text (SQLite) for the whole id list
    "postgresql": PlainSql(  # one index probe per id (``= ANY`` filters every item of the project)
        f"SELECT i.* FROM unnest(CAST(:ids AS text[])) AS e(x) CROSS JOIN LATERAL (SELECT {_COLUMNS}"
        " FROM items WHERE project_id = :project_id AND external_id = e.x LIMIT 1) AS i",
        items.c,
    ),
    "sqlite": PlainSql(
        f"SELECT {_COLUMNS} FROM items WHERE project_id = :project_id"
        " AND external_id IN (SELECT value FROM json_each(:ids))",
        items.c,
    ),
}


def items_by_external_id(
    conn: Connection, project_id: int, external_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The rows of ``project_id``'s items among ``external_ids`` (one statement, not one bound
    parameter per id)."""
    postgres = conn.dialect.name == "postgresql"
    given = [str(e) for e in external_ids]
    ids: Any = given if postgres else json.dumps(given)
    return _BY_EXTERNAL[conn.dialect.name].rows(conn, {"project_id": project_id, "ids": ids})


def _column(table: Table, name: str, values: list[Any], postgres: bool) -> list[Any]:
    """A column's values as the driver takes them (one conversion per distinct object in a row
    run: a batch shares its ``created_at``)."""
    convert = _converter(table, name, postgres)
    if convert is None:
        return values
    out: list[Any] = []
    last: Any = object()
    done: Any = None
    for v in values:
        if v is not last:
            last, done = v, (None if v is None else convert(v))
        out.append(done)
    return out


def _converter(table: Table, name: str, postgres: bool) -> Callable[[Any], Any] | None:
    kind = _kind(table.c[name])
    if kind == "time":
        if postgres:
            return lambda v: v if v.tzinfo is None else v.astimezone(UTC)
        return lambda v: (v if v.tzinfo is None else v.astimezone(UTC).replace(tzinfo=None)).strftime(
            _SQLITE_TIME
        )
    if kind == "json":
        if postgres:
            from psycopg.types.json import Json

            return Json
        return json.dumps
    if postgres:  # a binary array takes one element type: numpy scalars and ints among floats
        for sql_type, python in ((Boolean, bool), (Float, float), (Integer, int)):
            if isinstance(table.c[name].type, sql_type):
                return python
    return None


def _values(
    conn: Connection, table: Table, names: list[str], columns: list[list[Any]], key: str
) -> dict[Any, int]:
    width = len(names)
    per = max(1, min(SQLITE_ROWS, SQLITE_PARAMS // width))
    mark = "(" + ", ".join(["?"] * width) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES "
    rows = list(zip(*columns, strict=True))
    found: dict[Any, int] = {}
    for start in range(0, len(rows), per):
        part = rows[start : start + per]
        sql = head + ", ".join([mark] * len(part)) + f" RETURNING {key}, id"
        params = [v for row in part for v in row]
        found.update(_run(conn, sql, params, {}))
    return found


def _unnest(
    conn: Connection, table: Table, names: list[str], columns: list[list[Any]], key: str
) -> dict[Any, int]:
    dialect = conn.dialect
    arrays = [f"%b::{table.c[n].type.compile(dialect=dialect)}[]" for n in names]  # %b: binary
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT * FROM unnest({', '.join(arrays)})"
        f" RETURNING {key}, id"
    )
    return dict(_run(conn, sql, columns, {"prepare": False}))


def _run(conn: Connection, sql: str, params: Any, options: dict[str, Any]) -> list[Any]:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn._has_events or conn.engine._has_events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, True)
        try:
            cursor.execute(sql, params, **options)
        except conn.dialect.loaded_dbapi.Error as exc:
            conn._handle_dbapi_exception(exc, sql, params, cursor, None)  # raises SQLAlchemy's error
        return list(cursor.fetchall())
    finally:
        cursor.close()
