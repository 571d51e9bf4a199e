"""The audit log's head row, and leases so that several gateway processes share the outbox
and the owed pushes.

Revision ID: 0002
Revises: 0001

``audit_head`` holds the audit log's size in its one row. An appending transaction takes
its entry's index with ``UPDATE audit_head SET size = size + 1 RETURNING size - 1``: the
row stays locked until that transaction ends, so appenders take indices one at a time, a
rollback returns the index with the rest of the transaction (positions stay contiguous
from 0, as RFC 6962's tree of ``gateway.tlog`` needs), and a conflict between two
appenders shows at that one statement rather than as a duplicate ``MAX(idx) + 1`` found
at the insert. The row is filled from the entries already logged.

``lease_until`` and ``leased_by`` on ``outbox`` and ``dispatches``: a process claims a due
row until a moment and names itself, so no two processes publish or push it at once, and
a row whose holder died is claimable again once its lease has run out.

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: an aware moment is timestamptz on PostgreSQL, ISO 8601 text on SQLite, and a
# count is bigint on PostgreSQL, INTEGER (already 64-bit) on SQLite.
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

LEASED = ("outbox", "dispatches")


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", COUNT, nullable=False),
        # One row only: every appender must queue on the same one.
        sa.CheckConstraint("id = 1"),
    )
    op.execute(
        "INSERT INTO audit_head (id, size) "
        "SELECT 1, COALESCE(MAX(idx) + 1, 0) FROM audit_entries"
    )
    for table in LEASED:
        op.add_column(table, sa.Column("lease_until", TIMESTAMP))
        op.add_column(table, sa.Column("leased_by", sa.Text()))


def downgrade() -> None:
    for table in LEASED:
        # SQLite drops a column only by copying the table (Alembic's batch mode).
        with op.batch_alter_table(table) as batch:
            batch.drop_column("leased_by")
            batch.drop_column("lease_until")
    op.drop_table("audit_head")
