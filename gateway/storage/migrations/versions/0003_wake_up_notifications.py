"""Wake-ups between gateway processes: PostgreSQL triggers that NOTIFY what changed.

Revision ID: 0003
Revises: 0002

Several gateway processes may share one PostgreSQL database (issue 13). Each keeps
state of its own that a write made through another must reach: live inbox streams, the
directory snapshot, the outbox relay's idle wait. Triggers send a notification on the
channel ``gateway.services.wakeups`` LISTENs on:

* ``dipgw_inbox``, payload the recipient's organisation code (a directory code, never
  personal data), for each open row put in an inbox;
* ``dipgw_directory``, no payload, after any statement that writes organisations, people
  or grants (what ``Directory.refresh`` reads);
* ``dipgw_outbox``, no payload, after rows are put in the outbox.

A trigger runs inside the writing transaction, and PostgreSQL delivers a notification
only when that transaction commits (SQL command reference, NOTIFY), so no process is woken
for a write that rolled back, and every writer is covered: the gateway, a serialization
retry, and ``dipgw`` commands alike. Duplicates within one transaction are folded into
one by PostgreSQL, so a statement-level trigger costs one notification per transaction.

SQLite has no LISTEN/NOTIFY, and one gateway process owns a SQLite file: nothing to do.

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIRECTORY_TABLES = ("organisations", "people", "grants")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE FUNCTION dipgw_wake_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('dipgw_inbox', NEW.recipient);
            RETURN NULL;
        END
        $$
    """)
    # Only rows a stream would send: one inserted already closed (withdrawn unread before
    # it was delivered) is nothing to read.
    op.execute("""
        CREATE TRIGGER inbox_wakes AFTER INSERT ON inbox FOR EACH ROW
        WHEN (NEW.closed_at IS NULL AND NEW.acknowledged_at IS NULL)
        EXECUTE FUNCTION dipgw_wake_inbox()
    """)
    for channel in ("directory", "outbox"):
        op.execute(f"""
            CREATE FUNCTION dipgw_wake_{channel}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('dipgw_{channel}', '');
                RETURN NULL;
            END
            $$
        """)
    for table in DIRECTORY_TABLES:
        op.execute(f"""
            CREATE TRIGGER {table}_wake_directory
            AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} FOR EACH STATEMENT
            EXECUTE FUNCTION dipgw_wake_directory()
        """)
    op.execute("""
        CREATE TRIGGER outbox_wakes AFTER INSERT ON outbox FOR EACH STATEMENT
        EXECUTE FUNCTION dipgw_wake_outbox()
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER outbox_wakes ON outbox")
    for table in DIRECTORY_TABLES:
        op.execute(f"DROP TRIGGER {table}_wake_directory ON {table}")
    op.execute("DROP TRIGGER inbox_wakes ON inbox")
    for channel in ("inbox", "directory", "outbox"):
        op.execute(f"DROP FUNCTION dipgw_wake_{channel}()")
