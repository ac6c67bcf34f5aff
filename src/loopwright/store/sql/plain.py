"""Plain SQL on the driver's connection, for the statements every request runs.

Building and compiling a SQLAlchemy expression costs about 1 ms of CPU per statement on
PostgreSQL (``text()`` half of that); the same statement sent through the DBAPI cursor costs
a fifth. :class:`PlainSql` is one statement written once with ``:name`` parameters and the
table columns it returns: it is turned into the driver's parameter style once per dialect,
binds datetimes, JSON and booleans as SQLAlchemy's types would store them, and converts the
row back (aware UTC datetimes, decoded JSON, booleans). It runs inside the unit of work's
transaction (the same connection), fires the engine's ``before_cursor_execute`` listeners so
statement counters still see it, and lets SQLAlchemy translate driver errors
(``IntegrityError``, disconnects) exactly as for any other statement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import ClauseElement

from loopwright.store.sql.tables import UtcDateTime

_PARAM = re.compile(r"(?<![:\w]):(\w+)")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy's DateTime stores a value on SQLite


def _kind(column: Column[Any]) -> str:
    if isinstance(column.type, UtcDateTime):
        return "time"
    if isinstance(column.type, JSON):
        return "json"
    if isinstance(column.type, Boolean):
        return "bool"
    return ""


class PlainSql:
    """One statement: ``sql`` with ``:name`` parameters (``{lock}`` is ``FOR UPDATE …`` on
    PostgreSQL and nothing on SQLite), returning ``columns`` (names and types) in order."""

    def __init__(self, sql: str, columns: Iterable[Column[Any]] = (), lock: str = "") -> None:
        self.columns = tuple(columns)
        self.names = tuple(c.name for c in self.columns)
        self._sqlite = sql.replace("{lock}", "")
        self._postgres = _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")).replace("{lock}", lock)
        self._kinds = tuple(_kind(c) for c in self.columns)
        self._convert = any(self._kinds)

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, as ``{column name: value}``."""
        cursor = self._run(conn, params)
        try:
            return [self._row(r, conn) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row (or None)."""
        rows = self.rows(conn, params)  # read to the end: SQLite finishes the statement
        return rows[0] if rows else None

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run a statement that returns nothing; the number of rows it touched."""
        cursor = self._run(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _sql(self, conn: Connection) -> tuple[str, Mapping[str, Any]]:
        """The statement in the connection's parameter style, and parameters it fixes itself."""
        return (self._postgres if conn.dialect.name == "postgresql" else self._sqlite), {}

    def _run(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        postgres = conn.dialect.name == "postgresql"
        sql, fixed = self._sql(conn)
        bound = {k: _bind(v, postgres) for k, v in {**fixed, **params}.items()}
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if conn._has_events or conn.engine._has_events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, bound, None, False)
        try:
            cursor.execute(sql, bound)
        except conn.dialect.loaded_dbapi.Error as exc:
            conn._handle_dbapi_exception(exc, sql, bound, cursor, None)  # raises SQLAlchemy's error
        return cursor

    def _row(self, row: Sequence[Any], conn: Connection) -> dict[str, Any]:
        if not self._convert:
            return dict(zip(self.names, row, strict=True))
        postgres = conn.dialect.name == "postgresql"
        return {n: _value(v, k, postgres) for n, k, v in zip(self.names, self._kinds, row, strict=True)}


class CompiledSql(PlainSql):
    """A SQLAlchemy statement compiled once per dialect, then run like :class:`PlainSql`: for
    queries too intricate to write twice (the claim). Its ``bindparam`` names are the
    parameters; values the expression holds itself (constants) are bound as compiled."""

    def __init__(self, stmt: ClauseElement, columns: Iterable[Column[Any]] = ()) -> None:
        super().__init__("", columns)
        self._stmt = stmt
        self._compiled: dict[str, tuple[str, dict[str, Any]]] = {}

    def _sql(self, conn: Connection) -> tuple[str, Mapping[str, Any]]:
        name = conn.dialect.name
        if name not in self._compiled:
            dialect = conn.dialect if name == "postgresql" else sqlite.dialect(paramstyle="named")
            compiled: Any = self._stmt.compile(dialect=dialect)
            processors = compiled._bind_processors  # e.g. SQLite's JSON path: 'key' -> '$."key"'
            fixed = {
                k: processors[k](v) if k in processors else v
                for k, v in compiled.params.items()
                if v is not None
            }
            self._compiled[name] = (str(compiled), fixed)
        return self._compiled[name]


def _bind(value: Any, postgres: bool) -> Any:
    if isinstance(value, datetime):
        utc = value if value.tzinfo is None else value.astimezone(UTC)
        return utc if postgres else utc.replace(tzinfo=None).strftime(_SQLITE_TIME)
    if isinstance(value, dict):  # a JSON column's object (lists are not bound here)
        return json.dumps(value)
    return value


def _value(value: Any, kind: str, postgres: bool) -> Any:
    if value is None or not kind:
        return value
    if kind == "time":
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if kind == "json":
        return json.loads(value) if isinstance(value, str | bytes) and not postgres else value
    return bool(value)
