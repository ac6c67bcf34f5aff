"""Shared fixtures: a fresh SQL store (and its URL) on SQLite and on PostgreSQL.

PostgreSQL comes from ``LOOPWRIGHT_TEST_PG_URL``; when it cannot be reached its tests skip,
or fail if ``LOOPWRIGHT_REQUIRE_PG=1`` (as in CI). Each PostgreSQL test gets its own schema.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from loopwright.store.sql import SqlStore, make_engine

PG_URL = os.environ.get("LOOPWRIGHT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An engine on the test PostgreSQL database, or a skip (a failure if it is required)."""
    engine = make_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        message = (
            f"PostgreSQL not reachable at URL: {shown}; set LOOPWRIGHT_TEST_PG_URL"
            f" ({str(exc.orig).strip().splitlines()[0]})"
        )
        if os.environ.get("LOOPWRIGHT_REQUIRE_PG") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty database: a SQLite file, or a fresh PostgreSQL schema on search_path."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loopwright.db'}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"lw_{secrets.token_hex(6)}"
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """A migrated, empty store on each backend."""
    sql_store = SqlStore(store_url)
    yield sql_store
    sql_store.close()
