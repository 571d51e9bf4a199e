"""The gateway's tables as SQLAlchemy Core metadata, for SQLite and PostgreSQL alike.

This is the schema the 13 SQLite steps of earlier releases leave
(``gateway.storage.sqlite_legacy``), column for column and in the same column order, so
that queries written against it run unchanged on databases those releases made, plus
what later Alembic revisions add (``audit_head`` and the outbox and dispatch leases in
0002, ``audit_tiles`` in 0004, ``audit_cosignatures`` in 0006). The
column types below keep SQLite's stored values byte-identical to what those releases
wrote (ISO 8601 text timestamps, 0/1 integers, BLOBs), while PostgreSQL gets its native
types (``timestamptz``, ``boolean``, ``bytea``, ``bigint`` identity keys).

Alembic revisions never import this module (a revision must keep creating the schema of
its own day); ``tests/storage`` checks that this metadata and a migrated database agree.

Constraints other than indexes are left unnamed, as the SQLite steps left them:
PostgreSQL then names them by its documented default (``<table>_pkey``,
``<table>_<columns>_key``, ``<table>_<column>_fkey``), which later revisions can rely on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine


class Timestamp(TypeDecorator[datetime]):
    """An aware moment: ``timestamptz`` on PostgreSQL, ISO 8601 text in UTC on SQLite.

    On SQLite the text is exactly what earlier releases wrote
    (``moment.astimezone(UTC).isoformat(timespec="microseconds")``): fixed width, so text
    order is time order and range queries and ``ORDER BY`` keep working on the indexes.
    Naive datetimes are refused rather than read as the server's local time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no time zone; store aware datetimes")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        return moment.astimezone(UTC)


class Flag(TypeDecorator[bool]):
    """A yes/no column: ``boolean`` on PostgreSQL, the integers 0 and 1 on SQLite.

    SQLite has no boolean type (sqlite.org/datatype3.html section 2.1); earlier releases
    declared these columns INTEGER and stored 0 or 1, which this keeps, without the CHECK
    constraint SQLAlchemy's own Boolean would add.
    """

    impl = Boolean
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(Boolean())

    def process_bind_param(self, value: bool | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return int(value) if dialect.name == "sqlite" else bool(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> bool | None:
        return None if value is None else bool(value)


# Counts that can outgrow 2**31 over a deployment's life (audit log positions): bigint on
# PostgreSQL; on SQLite every INTEGER is already 64-bit and must stay spelt INTEGER, which
# makes an INTEGER PRIMARY KEY the rowid (sqlite.org/lang_createtable.html#rowid).
Count = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents stay text on both: the canonical text is what is hashed and signed, and
# PostgreSQL's jsonb would reorder keys and normalise numbers. Nothing queries inside them.
JsonText = Text


def _serial(name: str) -> Column[int]:
    """A generated key: ``INTEGER PRIMARY KEY AUTOINCREMENT`` on SQLite (with the table's
    ``sqlite_autoincrement``, so keys are never reused), a bigint identity on PostgreSQL."""
    return Column(name, Count, Identity(), primary_key=True)


metadata = MetaData()

organisations = Table(
    "organisations",
    metadata,
    Column("code", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("area", Text, nullable=False),
    Column("spoc_json", JsonText, nullable=False),
    Column("jwks_json", JsonText, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("areas_served_json", JsonText, nullable=False, server_default=text("'[]'")),
    Column("delivery_json", JsonText, nullable=False, server_default=text("'{}'")),
    Column("identity_provider_json", JsonText),
    # Refuse this organisation's unsigned messages (revision 0005, gateway.sdjwt).
    Column("signed_messages_required", Flag, nullable=False, server_default=false()),
)

messages = Table(
    "messages",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("sender", Text, nullable=False),
    Column("route", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("document_json", JsonText, nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("submitted_by", Text, nullable=False),
    Column("audit_index", Count),
    Column("subject_pnc", Text),
    Column("subject_name_dob", Text),
    # The sender's SD-JWT of the document, every disclosure (revision 0005, gateway.sdjwt).
    Column("sender_signature", Text),
    Index("messages_received", "received_at"),
    Index("messages_subject_pnc", "subject_pnc"),
    Index("messages_subject_name_dob", "subject_name_dob"),
    Index("messages_sender_received", "sender", "received_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("message_id", Text, ForeignKey("messages.message_id"), nullable=False),
    Column("recipient", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("permitted", Flag, nullable=False),
    Column("decision_json", JsonText, nullable=False),
    Column("payload_json", JsonText),
    Column("consent_based", Flag, nullable=False, server_default=false()),
    Column("resolved_by", Text),
    Column("consent_record", Text),
    PrimaryKeyConstraint("message_id", "recipient"),
    Index(
        "deliveries_consent_record",
        "consent_record",
        sqlite_where=text("consent_record IS NOT NULL"),
        postgresql_where=text("consent_record IS NOT NULL"),
    ),
)

status_events = Table(
    "status_events",
    metadata,
    _serial("id"),
    Column("message_id", Text, ForeignKey("messages.message_id"), nullable=False),
    Column("recipient", Text),
    Column("status", Text, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("detail", Text),
    Index("status_events_by_message", "message_id", "id"),
    sqlite_autoincrement=True,
)

outbox = Table(
    "outbox",
    metadata,
    _serial("id"),
    Column("message_id", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("last_error", Text),
    Column("published_at", Timestamp),
    # Held by one process while it publishes the row (revision 0002); free once past.
    Column("lease_until", Timestamp),
    Column("leased_by", Text),
    UniqueConstraint("message_id", "recipient"),
    ForeignKeyConstraint(
        ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
    ),
    Index(
        "outbox_pending",
        "next_attempt_at",
        sqlite_where=text("published_at IS NULL"),
        postgresql_where=text("published_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)

inbox = Table(
    "inbox",
    metadata,
    _serial("seq"),
    Column("message_id", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("delivered_at", Timestamp, nullable=False),
    Column("acknowledged_at", Timestamp),
    Column("acknowledged_by", Text),
    Column("closed_at", Timestamp),
    Column("closed_reason", Text),
    # The delivery's audit entry (revision 0007), for its receipt.
    Column("audit_index", Count),
    UniqueConstraint("message_id", "recipient"),
    ForeignKeyConstraint(
        ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
    ),
    Index(
        "inbox_open",
        "recipient",
        "seq",
        sqlite_where=text("acknowledged_at IS NULL AND closed_at IS NULL"),
        postgresql_where=text("acknowledged_at IS NULL AND closed_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)

token_uses = Table(
    "token_uses",
    metadata,
    Column("issuer", Text, nullable=False),
    Column("jti", Text, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("issuer", "jti"),
    Index("token_uses_expiry", "expires_at"),
)

consents = Table(
    "consents",
    metadata,
    Column("id", Text, primary_key=True),
    Column("pnc", Text),
    Column("name_dob", Text, nullable=False),
    Column("record_json", JsonText, nullable=False),
    Column("recorded_at", Timestamp, nullable=False),
    Column("withdrawn_at", Timestamp),
    Index("consents_pnc", "pnc"),
    Index("consents_name_dob", "name_dob"),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("version", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("source_text", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("proposed_at", Timestamp, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", Timestamp),
    Column("effective_from", Timestamp),
    Column("reason", Text),
)

# Positions in the append-only audit log are assigned by the gateway (contiguous from 0,
# gateway.tlog), never by the database, hence autoincrement=False.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("idx", Count, primary_key=True, autoincrement=False),
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", Count, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("issued_at", Timestamp, nullable=False),
)

# The audit log's size, in one row (revision 0002). An appender takes its index with
# ``UPDATE ... SET size = size + 1 RETURNING size - 1`` in its own transaction
# (gateway.storage.audit_log): the row lock orders appenders and a rollback gives the index
# back, so positions stay contiguous from 0.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", Count, nullable=False),
    CheckConstraint("id = 1"),
)

# The audit log's full hash tiles (revision 0004; C2SP tlog-tiles, height 8): tile
# ``level/idx`` holds the 256 hashes of tree level ``8 * level`` from position ``idx * 256``,
# concatenated (8192 bytes), and ``root``, their MTH, the hash one tile level up. Written
# only by the checkpointer with the checkpoint that fills them, never changed; proofs read
# O(log n) of them (gateway.tlog.tilehash) instead of every leaf hash.
audit_tiles = Table(
    "audit_tiles",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", Count, primary_key=True, autoincrement=False),
    Column("hashes", LargeBinary, nullable=False),
    Column("root", LargeBinary, nullable=False),
)

# Witness cosignatures of checkpoints (revision 0006): one line per witness (its verifier
# key string) and checkpoint size, as add-checkpoint returned it (gateway.services.witnessing).
audit_cosignatures = Table(
    "audit_cosignatures",
    metadata,
    Column("witness", Text, primary_key=True),
    Column("checkpoint_size", Count, primary_key=True, autoincrement=False),
    Column("line", Text, nullable=False),
    Column("cosigned_at", Timestamp, nullable=False),
    Index("audit_cosignatures_by_size", "checkpoint_size"),
)

dispatches = Table(
    "dispatches",
    metadata,
    _serial("id"),
    Column("message_id", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("last_error", Text),
    Column("done_at", Timestamp),
    Column("external_ref", Text),
    Column("acknowledged_at", Timestamp),
    # Held by one process while it makes the push (revision 0002); free once past.
    Column("lease_until", Timestamp),
    Column("leased_by", Text),
    UniqueConstraint("message_id", "recipient", "purpose"),
    ForeignKeyConstraint(
        ["message_id", "recipient"], ["deliveries.message_id", "deliveries.recipient"]
    ),
    Index(
        "dispatches_due",
        "next_attempt_at",
        sqlite_where=text("done_at IS NULL"),
        postgresql_where=text("done_at IS NULL"),
    ),
    Index(
        "dispatches_awaiting_ack",
        "channel",
        sqlite_where=text(
            "done_at IS NOT NULL AND acknowledged_at IS NULL AND external_ref IS NOT NULL"
        ),
        postgresql_where=text(
            "done_at IS NOT NULL AND acknowledged_at IS NULL AND external_ref IS NOT NULL"
        ),
    ),
    sqlite_autoincrement=True,
)

people = Table(
    "people",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_code", Text, ForeignKey("organisations.code"), nullable=False),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("sign_in_issuer", Text),
    Column("sign_in_subject", Text),
    Column("jwks_json", JsonText, nullable=False, server_default=text("'[]'")),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("sign_in_issuer", "sign_in_subject"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", Text, primary_key=True),
    Column("person_id", Text, ForeignKey("people.id"), nullable=False),
    Column("role", Text, nullable=False),
    Column("granted_by", Text, nullable=False),
    Column("granted_at", Timestamp, nullable=False),
    Column("reason", Text, nullable=False),
    Column("revoked_at", Timestamp),
    Column("revoked_by", Text),
    Column("revocation_reason", Text),
    Index(
        "grants_active",
        "person_id",
        "role",
        unique=True,
        sqlite_where=text("revoked_at IS NULL"),
        postgresql_where=text("revoked_at IS NULL"),
    ),
)

directory_imports = Table(
    "directory_imports",
    metadata,
    Column("id", Text, primary_key=True),
    Column("csv_text", Text, nullable=False),
    Column("plan_json", JsonText, nullable=False),
    Column("proposed_by", Text, nullable=False),
    Column("proposed_at", Timestamp, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", Timestamp),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("person_id", Text, ForeignKey("people.id"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Index("console_sessions_person", "person_id"),
)

console_sign_ins = Table(
    "console_sign_ins",
    metadata,
    Column("id", Text, primary_key=True),
    Column("org_code", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("code_verifier", Text, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("console_sign_ins_created", "created_at"),
)
