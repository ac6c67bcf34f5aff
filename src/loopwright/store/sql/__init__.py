"""SQL store: SQLAlchemy Core tables, repositories, unit of work and Alembic migrations.

SQLite (WAL, foreign keys, ``BEGIN IMMEDIATE``) is the default; PostgreSQL via psycopg 3.
"""

from loopwright.store.sql.engine import make_engine, migrate
from loopwright.store.sql.uow import SqlStore

__all__ = ["SqlStore", "make_engine", "migrate"]
