"""Witness cosignatures of the audit log's checkpoints (C2SP tlog-cosignature).

Revision ID: 0006
Revises: 0005

``audit_cosignatures`` holds, per configured witness (its verifier key string) and per
checkpoint size, the cosignature line the witness returned from C2SP tlog-witness
add-checkpoint, without its final newline. The checkpoint answered and exported is the
stored signed note with these lines appended. The newest size a witness cosigned is the
``old`` size of the next request to it, so no other state is kept. Rows are only added:
a cosignature is evidence, never replaced.

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: a count is bigint on PostgreSQL, INTEGER (already 64-bit) on SQLite; a
# timestamp is timestamptz on PostgreSQL, ISO 8601 text on SQLite.
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_cosignatures",
        sa.Column("witness", sa.Text(), primary_key=True),
        sa.Column("checkpoint_size", COUNT, primary_key=True, autoincrement=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("cosigned_at", TIMESTAMP, nullable=False),
    )
    op.create_index(
        "audit_cosignatures_by_size", "audit_cosignatures", ["checkpoint_size"])


def downgrade() -> None:
    op.drop_index("audit_cosignatures_by_size", table_name="audit_cosignatures")
    op.drop_table("audit_cosignatures")
