"""Alembic environment: runs on the connection that :func:`loopwright.store.sql.migrate` passes in."""

from alembic import context

from loopwright.store.sql.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with loopwright.store.sql.migrate(engine)")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
