"""Where the audit log holds each delivery, so a delivered message carries its receipt.

Revision ID: 0007
Revises: 0006

``inbox.audit_index`` is the index of the delivery's ``message.delivered`` entry, written
in the delivery's own transaction (``gateway.storage.delivery.put_in_inbox``), as
``messages.audit_index`` holds the acceptance's. Inbox reads join it to
``audit_entries`` for the leaf hash, and ``GET /v1/messages/{id}/receipt`` proves it
(``gateway.tlog.receipt``). Rows delivered before this revision keep NULL: finding their
entries would mean reading every entry of the log inside the upgrade; their recipients
still get the acceptance's receipt.

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: a count is bigint on PostgreSQL, INTEGER (already 64-bit) on SQLite.
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("audit_index", COUNT))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("audit_index")
