"""Alembic's environment for the gateway: always online, on a connection handed over.

``gateway.storage.migrations.upgrade`` opens the transaction (taking SQLite's write lock
or PostgreSQL's advisory lock first) and passes its connection in
``config.attributes["connection"]``; this file only runs the revisions on it, so the
whole upgrade commits or rolls back as one.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "dipgw migrations run only through gateway.storage.migrations.upgrade(), which "
        "passes a connection; offline (--sql) mode is not supported"
    )
context.configure(
    connection=connection,
    # SQLite alters most things only by copying the table (sqlite.org/lang_altertable.html);
    # Alembic's batch mode writes revisions that way.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
