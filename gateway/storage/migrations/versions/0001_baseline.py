"""Baseline: the schema as the 13 SQLite steps of earlier releases leave it.

Revision ID: 0001
Revises: (none)

Frozen: this file spells out its own tables rather than importing
``gateway.storage.schema``, so that it keeps creating this schema after the live one moves
on. On SQLite the columns keep the earlier releases' declared types (ISO 8601 text
timestamps, 0/1 integers), so a database from before Alembic, finished to step 13 and
stamped with this revision, is the same as one this revision creates; PostgreSQL gets
native types. ``tests/storage`` checks both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An aware moment: timestamptz on PostgreSQL, ISO 8601 text (UTC, microseconds) on SQLite.
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
# Yes/no: boolean on PostgreSQL, the integers 0 and 1 on SQLite (no boolean type there).
FLAG = sa.Boolean().with_variant(sa.Integer(), "sqlite")
# Counts and generated keys: bigint on PostgreSQL; INTEGER on SQLite, where it is 64-bit
# and an INTEGER PRIMARY KEY is the rowid.
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _where(condition: str) -> dict[str, Any]:
    """A partial index's condition, for whichever of the two dialects runs this."""
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("area", sa.Text(), nullable=False),
        sa.Column("spoc_json", sa.Text(), nullable=False),
        sa.Column("jwks_json", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("areas_served_json", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("delivery_json", sa.Text(), server_default=sa.text("'{}'"), nullable=False),
        sa.Column("identity_provider_json", sa.Text()),
    )
    op.create_table(
        "messages",
        sa.Column("message_id", sa.Text(), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.Text(), nullable=False),
        sa.Column("document_json", sa.Text(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("audit_index", COUNT),
        sa.Column("subject_pnc", sa.Text()),
        sa.Column("subject_name_dob", sa.Text()),
    )
    op.create_index("messages_received", "messages", ["received_at"])
    op.create_index("messages_sender_received", "messages", ["sender", "received_at"])
    op.create_index("messages_subject_name_dob", "messages", ["subject_name_dob"])
    op.create_index("messages_subject_pnc", "messages", ["subject_pnc"])
    op.create_table(
        "deliveries",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("permitted", FLAG, nullable=False),
        sa.Column("decision_json", sa.Text(), nullable=False),
        sa.Column("payload_json", sa.Text()),
        sa.Column("consent_based", FLAG, server_default=sa.false(), nullable=False),
        sa.Column("resolved_by", sa.Text()),
        sa.Column("consent_record", sa.Text()),
        sa.PrimaryKeyConstraint("message_id", "recipient"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.message_id"]),
    )
    op.create_index(
        "deliveries_consent_record",
        "deliveries",
        ["consent_record"],
        **_where("consent_record IS NOT NULL"),
    )
    op.create_table(
        "status_events",
        sa.Column("id", COUNT, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("detail", sa.Text()),
        sa.ForeignKeyConstraint(["message_id"], ["messages.message_id"]),
        sqlite_autoincrement=True,
    )
    op.create_index("status_events_by_message", "status_events", ["message_id", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", COUNT, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("published_at", TIMESTAMP),
        sa.UniqueConstraint("message_id", "recipient"),
        sa.ForeignKeyConstraint(
            ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "outbox_pending", "outbox", ["next_attempt_at"], **_where("published_at IS NULL")
    )
    op.create_table(
        "inbox",
        sa.Column("seq", COUNT, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("delivered_at", TIMESTAMP, nullable=False),
        sa.Column("acknowledged_at", TIMESTAMP),
        sa.Column("acknowledged_by", sa.Text()),
        sa.Column("closed_at", TIMESTAMP),
        sa.Column("closed_reason", sa.Text()),
        sa.UniqueConstraint("message_id", "recipient"),
        sa.ForeignKeyConstraint(
            ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "inbox_open",
        "inbox",
        ["recipient", "seq"],
        **_where("acknowledged_at IS NULL AND closed_at IS NULL"),
    )
    op.create_table(
        "token_uses",
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti"),
    )
    op.create_index("token_uses_expiry", "token_uses", ["expires_at"])
    op.create_table(
        "consents",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("pnc", sa.Text()),
        sa.Column("name_dob", sa.Text(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("withdrawn_at", TIMESTAMP),
    )
    op.create_index("consents_name_dob", "consents", ["name_dob"])
    op.create_index("consents_pnc", "consents", ["pnc"])
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("proposed_at", TIMESTAMP, nullable=False),
        sa.Column("approved_by", sa.Text()),
        sa.Column("approved_at", TIMESTAMP),
        sa.Column("effective_from", TIMESTAMP),
        sa.Column("reason", sa.Text()),
    )
    op.create_table(
        "audit_entries",
        sa.Column("idx", COUNT, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", COUNT, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("issued_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "dispatches",
        sa.Column("id", COUNT, sa.Identity(), primary_key=True),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("done_at", TIMESTAMP),
        sa.Column("external_ref", sa.Text()),
        sa.Column("acknowledged_at", TIMESTAMP),
        sa.UniqueConstraint("message_id", "recipient", "purpose"),
        sa.ForeignKeyConstraint(
            ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "dispatches_awaiting_ack",
        "dispatches",
        ["channel"],
        **_where("done_at IS NOT NULL AND acknowledged_at IS NULL AND external_ref IS NOT NULL"),
    )
    op.create_index(
        "dispatches_due", "dispatches", ["next_attempt_at"], **_where("done_at IS NULL")
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("org_code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("sign_in_issuer", sa.Text()),
        sa.Column("sign_in_subject", sa.Text()),
        sa.Column("jwks_json", sa.Text(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["org_code"], ["organisations.code"]),
        sa.UniqueConstraint("sign_in_issuer", "sign_in_subject"),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("granted_at", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revoked_at", TIMESTAMP),
        sa.Column("revoked_by", sa.Text()),
        sa.Column("revocation_reason", sa.Text()),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
    )
    op.create_index(
        "grants_active",
        "grants",
        ["person_id", "role"],
        unique=True,
        **_where("revoked_at IS NULL"),
    )
    op.create_table(
        "directory_imports",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("csv_text", sa.Text(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        sa.Column("proposed_at", TIMESTAMP, nullable=False),
        sa.Column("approved_by", sa.Text()),
        sa.Column("approved_at", TIMESTAMP),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("person_id", sa.Text(), nullable=False),
        sa.Column("csrf_token", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"]),
    )
    op.create_index("console_sessions_person", "console_sessions", ["person_id"])
    op.create_table(
        "console_sign_ins",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("org_code", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("console_sign_ins_created", "console_sign_ins", ["created_at"])


def downgrade() -> None:
    # Nothing precedes the baseline; going below it would drop every table, the audit log
    # with them. Restore a backup instead.
    raise NotImplementedError("the baseline revision cannot be downgraded; restore a backup")
