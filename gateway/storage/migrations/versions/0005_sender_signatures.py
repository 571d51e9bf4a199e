"""Sender-signed messages: the sender's SD-JWT beside the document, and who must sign.

Revision ID: 0005
Revises: 0004

``messages.sender_signature`` keeps the sending system's SD-JWT of the envelope (RFC 9901,
``gateway.sdjwt``) with every disclosure, NULL for a message sent unsigned; each recipient
is given the presentation of what its decision lets it see. ``organisations
.signed_messages_required`` makes the gateway refuse an organisation's unsigned messages
(false for every organisation already in the directory: signing is opted into).

Frozen: spell out tables and columns here; never import gateway.storage.schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in 0001: boolean on PostgreSQL, the integers 0 and 1 on SQLite.
FLAG = sa.Boolean().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("messages") as table:
        table.add_column(sa.Column("sender_signature", sa.Text(), nullable=True))
    with op.batch_alter_table("organisations") as table:
        table.add_column(sa.Column(
            "signed_messages_required", FLAG, nullable=False,
            server_default=sa.false(),
        ))


def downgrade() -> None:
    with op.batch_alter_table("organisations") as table:
        table.drop_column("signed_messages_required")
    with op.batch_alter_table("messages") as table:
        table.drop_column("sender_signature")
