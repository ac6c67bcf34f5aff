"""Build engines that behave well under concurrency, and bring a database up to the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 5
PG_RECYCLE_S = 1800  # reopen connections this old: poolers and firewalls drop idle ones
PG_POOL_SIZE, PG_POOL_OVERFLOW = 20, 10  # connections a process keeps open, and opens beyond them in bursts
_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x6C77_6D69  # pg advisory lock key: concurrent migrate() calls take turns
_READING: ContextVar[bool] = ContextVar("loopwright_reading", default=False)


@contextmanager
def reading() -> Iterator[None]:
    """Work in this block only reads: SQLite transactions begin DEFERRED, on a WAL snapshot,
    so they never queue behind a writer (PostgreSQL readers never do). Do not write in it: a
    deferred transaction cannot wait for the write lock once it has read."""
    token = _READING.set(True)
    try:
        yield
    finally:
        _READING.reset(token)


def make_engine(url: str, pool_size: int | None = None) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL (``postgresql://`` means psycopg 3).

    Behind PgBouncer in transaction mode (before 1.21, which cannot keep prepared statements
    across server connections) add ``?prepare_threshold=none`` to the URL: psycopg then never
    prepares statements server-side.

    ``pool_size`` sets how many connections are kept open, with none on overflow. PostgreSQL
    defaults to :data:`PG_POOL_SIZE` kept and :data:`PG_POOL_OVERFLOW` more in bursts:
    SQLAlchemy's own default keeps 5 and closes the 10 it opens on overflow after each use, so
    20 concurrent annotators made PostgreSQL fork ~40 backends a second (800 connections in a
    20 s benchmark run). SQLite keeps SQLAlchemy's default: opening a file is cheap.
    """
    sa_url = make_url(url)
    if sa_url.drivername in ("postgresql", "postgres"):
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    pool: dict[str, Any] = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
    if pool_size is None and sa_url.get_backend_name() == "postgresql":
        pool = {"pool_size": PG_POOL_SIZE, "max_overflow": PG_POOL_OVERFLOW}
    if sa_url.get_backend_name() == "sqlite":
        return _sqlite_engine(sa_url, pool)
    connect_args: dict[str, Any] = {}
    if sa_url.get_backend_name() == "postgresql" and "connect_timeout" not in sa_url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "prepare_threshold" in sa_url.query:  # ?prepare_threshold=none behind PgBouncer < 1.21
        value = str(sa_url.query["prepare_threshold"])
        connect_args["prepare_threshold"] = None if value.lower() == "none" else int(value)
        sa_url = sa_url.difference_update_query(["prepare_threshold"])
    # No pre-ping: it costs a round trip on every checkout. A connection that died with the
    # server fails its request once; SQLAlchemy then drops the whole pool and reconnects.
    return create_engine(sa_url, pool_recycle=PG_RECYCLE_S, connect_args=connect_args, **pool)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None: another database, in memory, or a ``file:`` URI)."""
    sa_url = make_url(url)
    database = sa_url.database or ""
    if sa_url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_engine(url: URL, pool: dict[str, Any]) -> Engine:
    """SQLite with WAL and foreign keys, where every transaction starts with BEGIN IMMEDIATE.

    Taking the write lock up front makes concurrent writers queue on ``busy_timeout``
    instead of failing with "database is locked" when a reader upgrades to a writer.
    Inside :func:`reading` a transaction begins DEFERRED instead and never waits for writers.
    """
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit its own BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA secure_delete = ON")  # deleted content is zeroed, not left in free space
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if _READING.get() else "BEGIN IMMEDIATE")

    return engine


def head_revision() -> str:
    """The newest shipped migration: revision ids are the files' four-digit prefixes (0001, …),
    a chain checked against Alembic's own view by tests/test_startup.py."""
    return max(p.name[:4] for p in (_MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def at_head(engine: Engine) -> bool:
    """True when the database is already at :func:`head_revision` (one read, no Alembic)."""
    try:
        with reading(), engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no version table yet: a new database
        return False
    return rows == [head_revision()]


def migrate(engine: Engine) -> None:
    """Run ``alembic upgrade head`` on ``engine`` with the migrations shipped in this package.

    A database already at head is left alone without importing Alembic (a third of a second
    of every CLI command's start-up and every server worker's)."""
    if at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
