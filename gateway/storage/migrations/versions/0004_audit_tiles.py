"""The audit log's hash tiles, so proofs read O(log n) stored hashes, not every leaf hash.

Revision ID: 0004
Revises: 0003

``audit_tiles`` holds the full tiles of the audit log's Merkle tree as C2SP tlog-tiles
lays them out (tile height 8): the row ``(level, idx)`` is tile ``tile/<level>/<idx>``,
its 256 hashes of tree level ``8 * level`` concatenated, with ``root``, their RFC 9162
§2.1.1 MTH. The checkpointer writes the tiles a checkpoint fills with that checkpoint
(``gateway.services.checkpoints``); the table starts empty here, and the checkpointer
builds the tiles of checkpoints issued before this revision once, from the stored leaf
hashes, when it next starts as leader. Building them in the migration would hash every
entry of a large log inside the upgrade's transaction, with no way to check the result
against the signed checkpoints that the checkpointer checks it against.

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: a count is bigint on PostgreSQL, INTEGER (already 64-bit) on SQLite.
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_tiles",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", COUNT, primary_key=True, autoincrement=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_tiles")
