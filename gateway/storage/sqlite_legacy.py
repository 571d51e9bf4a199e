"""The SQLite schema steps of releases before Alembic, kept to bring their databases up.

Those releases numbered their schema in ``PRAGMA user_version`` (1 to 13) and applied the
steps below in order. ``gateway.storage.migrations`` finishes any such database to step 13
and then stamps Alembic's baseline revision, which creates exactly the schema step 13
leaves. These steps are frozen: a schema change now is a new Alembic revision, never an
edit here.
"""

from __future__ import annotations

from sqlalchemy import Connection

STEPS: tuple[str, ...] = (
    """
    CREATE TABLE organisations (
        code TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        area TEXT NOT NULL,
        spoc_json TEXT NOT NULL,
        jwks_json TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        sender TEXT NOT NULL,
        route TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        document_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        audit_index INTEGER
    );
    CREATE TABLE deliveries (
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        recipient TEXT NOT NULL,
        position INTEGER NOT NULL,
        permitted INTEGER NOT NULL,
        decision_json TEXT NOT NULL,
        payload_json TEXT,
        PRIMARY KEY (message_id, recipient)
    );
    CREATE TABLE status_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        recipient TEXT,
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX status_events_by_message ON status_events(message_id, id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        published_at TEXT,
        UNIQUE (message_id, recipient),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX outbox_pending ON outbox(next_attempt_at) WHERE published_at IS NULL;
    CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        delivered_at TEXT NOT NULL,
        acknowledged_at TEXT,
        acknowledged_by TEXT,
        UNIQUE (message_id, recipient),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX inbox_unacknowledged ON inbox(recipient, seq) WHERE acknowledged_at IS NULL;
    CREATE TABLE token_uses (
        issuer TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (issuer, jti)
    );
    CREATE INDEX token_uses_expiry ON token_uses(expires_at);
    """,
    """
    ALTER TABLE inbox ADD COLUMN closed_at TEXT;
    ALTER TABLE inbox ADD COLUMN closed_reason TEXT;
    DROP INDEX inbox_unacknowledged;
    CREATE INDEX inbox_open ON inbox(recipient, seq)
        WHERE acknowledged_at IS NULL AND closed_at IS NULL;
    CREATE INDEX messages_received ON messages(received_at);
    """,
    """
    CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        pnc TEXT,
        name_dob TEXT NOT NULL,
        record_json TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        withdrawn_at TEXT
    );
    CREATE INDEX consents_pnc ON consents(pnc);
    CREATE INDEX consents_name_dob ON consents(name_dob);
    ALTER TABLE messages ADD COLUMN subject_pnc TEXT;
    ALTER TABLE messages ADD COLUMN subject_name_dob TEXT;
    CREATE INDEX messages_subject_pnc ON messages(subject_pnc);
    CREATE INDEX messages_subject_name_dob ON messages(subject_name_dob);
    ALTER TABLE deliveries ADD COLUMN consent_based INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE policy_versions (
        version TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source_text TEXT NOT NULL,
        author TEXT NOT NULL,
        proposed_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT,
        effective_from TEXT
    );
    """,
    """
    CREATE TABLE audit_entries (
        idx INTEGER PRIMARY KEY,
        entry BLOB NOT NULL,
        leaf_hash BLOB NOT NULL
    );
    CREATE TABLE audit_checkpoints (
        size INTEGER PRIMARY KEY,
        note TEXT NOT NULL,
        issued_at TEXT NOT NULL
    );
    """,
    """
    ALTER TABLE organisations ADD COLUMN areas_served_json TEXT NOT NULL DEFAULT '[]';
    """,
    """
    ALTER TABLE deliveries ADD COLUMN resolved_by TEXT;
    """,
    """
    ALTER TABLE organisations ADD COLUMN delivery_json TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE dispatches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        channel TEXT NOT NULL,
        purpose TEXT NOT NULL,
        target TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        done_at TEXT,
        external_ref TEXT,
        acknowledged_at TEXT,
        UNIQUE (message_id, recipient, purpose),
        FOREIGN KEY (message_id, recipient) REFERENCES deliveries(message_id, recipient)
    );
    CREATE INDEX dispatches_due ON dispatches(next_attempt_at) WHERE done_at IS NULL;
    CREATE INDEX dispatches_awaiting_ack ON dispatches(channel)
        WHERE done_at IS NOT NULL AND acknowledged_at IS NULL AND external_ref IS NOT NULL;
    """,
    """
    CREATE TABLE people (
        id TEXT PRIMARY KEY,
        org_code TEXT NOT NULL REFERENCES organisations(code),
        name TEXT NOT NULL,
        email TEXT NOT NULL,
        sign_in_issuer TEXT,
        sign_in_subject TEXT,
        jwks_json TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        UNIQUE (sign_in_issuer, sign_in_subject)
    );
    CREATE TABLE grants (
        id TEXT PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id),
        role TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        granted_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        revoked_at TEXT,
        revoked_by TEXT,
        revocation_reason TEXT
    );
    CREATE UNIQUE INDEX grants_active ON grants(person_id, role) WHERE revoked_at IS NULL;
    CREATE TABLE directory_imports (
        id TEXT PRIMARY KEY,
        csv_text TEXT NOT NULL,
        plan_json TEXT NOT NULL,
        proposed_by TEXT NOT NULL,
        proposed_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT
    );
    """,
    # The consent record a consent-based share relies on, so that withdrawing that record
    # finds exactly the shares resting on it (NULL: decided before this, or on the
    # sender's declaration).
    """
    ALTER TABLE deliveries ADD COLUMN consent_record TEXT;
    CREATE INDEX deliveries_consent_record ON deliveries(consent_record)
        WHERE consent_record IS NOT NULL;
    """,
    # Web console sessions (gateway.console.sessions): the id is the SHA-256 of the
    # cookie's secret; deleting a row revokes the session.
    """
    CREATE TABLE console_sessions (
        id TEXT PRIMARY KEY,
        person_id TEXT NOT NULL REFERENCES people(id),
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
    );
    CREATE INDEX console_sessions_person ON console_sessions(person_id);
    """,
    # OpenID Connect sign-in to the console (gateway.console.oidc): the identity provider
    # each organisation registers, and sign-ins under way (state, nonce and PKCE verifier
    # held server-side, each row taken once; its id the SHA-256 of the browser's cookie).
    """
    ALTER TABLE organisations ADD COLUMN identity_provider_json TEXT;
    CREATE TABLE console_sign_ins (
        id TEXT PRIMARY KEY,
        org_code TEXT NOT NULL,
        state TEXT NOT NULL,
        nonce TEXT NOT NULL,
        code_verifier TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX console_sign_ins_created ON console_sign_ins(created_at);
    """,
    # The console's sent list (MessageRepository.sent): an organisation's own messages,
    # newest first, without reading every message.
    """
    CREATE INDEX messages_sender_received ON messages(sender, received_at);
    """,
    # Why each policy version was proposed, kept with it (policy_actions.propose). Versions
    # proposed before this take the reason their signed policy.proposed entry gave.
    """
    ALTER TABLE policy_versions ADD COLUMN reason TEXT;
    UPDATE policy_versions SET reason = (
        SELECT json_extract(CAST(entry AS TEXT), '$.details.reason') FROM audit_entries
        WHERE json_extract(CAST(entry AS TEXT), '$.action') = 'policy.proposed'
          AND json_extract(CAST(entry AS TEXT), '$.details.version') = policy_versions.version
        ORDER BY idx LIMIT 1
    );
    """,
)


LAST = len(STEPS)


def finish(connection: Connection, version: int) -> None:
    """Apply the steps after ``version`` inside the caller's transaction.

    Each step ends by recording its number in ``user_version``, which SQLite keeps in the
    database header and commits or rolls back with the transaction (sqlite.org/pragma.html
    #pragma_user_version), so an interrupted upgrade leaves no partial step behind.
    """
    if not 0 < version <= LAST:
        raise ValueError(
            f"PRAGMA user_version {version} is not a dipgw schema step (1 to {LAST})"
        )
    for number, script in enumerate(STEPS[version:], start=version + 1):
        for statement in script.split(";"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        connection.exec_driver_sql(f"PRAGMA user_version={number}")
