"""Alembic migrations: up from empty on SQLite and PostgreSQL, up from the numbered SQLite
steps of earlier releases with their rows intact, and the schema each way the same as
``gateway.storage.schema`` and as those earlier releases made it."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, NullPool, create_engine, inspect, select
from sqlalchemy.engine import URL

from gateway.storage import migrations, schema, sqlite_legacy
from gateway.storage.engine import database_url
from tests.backends import sqlite_only

# The tables of the baseline (revision 0001), and of the newest revision.
BASELINE_TABLES = {
    "organisations", "messages", "deliveries", "status_events", "outbox", "inbox",
    "token_uses", "consents", "policy_versions", "audit_entries", "audit_checkpoints",
    "dispatches", "people", "grants", "directory_imports", "console_sessions",
    "console_sign_ins",
}
TABLES = BASELINE_TABLES | {"audit_head", "audit_tiles", "audit_cosignatures"}
HEAD = ScriptDirectory.from_config(migrations.config()).get_current_head()
AT = "2026-11-30T10:00:00.000000+00:00"


def sqlite_file(path: Path) -> Iterator[Engine]:
    engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    yield from sqlite_file(tmp_path / "dipgw.sqlite3")


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url(postgres_url), poolclass=NullPool)
    yield engine
    engine.dispose()


def legacy_database(path: Path, version: int) -> None:
    """A database as a release before Alembic left it at schema step ``version``, with a
    message, its delivery, outbox row and status, an organisation, a policy version and
    the audit entry that proposed it."""
    with sqlite3.connect(path) as conn:
        for script in sqlite_legacy.STEPS[:version]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute(
            "INSERT INTO organisations (code, kind, name, area, spoc_json, jwks_json, "
            "updated_at) VALUES ('CJIT-NFK', 'cjit', 'Norfolk CJIT', 'Norfolk', '{}', '[]', ?)",
            (AT,),
        )
        conn.execute(
            "INSERT INTO messages (message_id, type, sender, route, content_hash, "
            "document_json, received_at, submitted_by, audit_index) "
            "VALUES ('m1', 'ra1_notice', 'POL-NFK', 'enforcement', 'sha256:x', '{\"a\":1}', ?, "
            "'POL-NFK', 0)",
            (AT,),
        )
        conn.execute(
            "INSERT INTO deliveries (message_id, recipient, position, permitted, decision_json) "
            "VALUES ('m1', 'CJIT-NFK', 0, 1, '{}')"
        )
        conn.execute(
            "INSERT INTO outbox (message_id, recipient, created_at, next_attempt_at) "
            "VALUES ('m1', 'CJIT-NFK', ?, ?)",
            (AT, AT),
        )
        conn.execute(
            "INSERT INTO status_events (message_id, status, at) VALUES ('m1', 'accepted', ?)",
            (AT,),
        )
        conn.execute(
            "INSERT INTO policy_versions (version, name, source_text, author, proposed_at) "
            "VALUES ('sha256:aaa', 'dip-default', 'x', 'cjit-nfk.ig-lead', ?)",
            (AT,),
        )
        entry = (b'{"action":"policy.proposed","details":{"reason":"Probation asked",'
                 b'"version":"sha256:aaa"}}')
        conn.execute(
            "INSERT INTO audit_entries (idx, entry, leaf_hash) VALUES (0, ?, ?)",
            (entry, b"\x01" * 32),
        )


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def differences(engine: Engine, *, legacy: bool = False) -> list[Any]:
    """What ``alembic check`` would report: the metadata against the database.

    On a database the earlier releases made (``legacy``), primary key columns allow NULL
    where the metadata says NOT NULL (see ``shape``): those, and only those, are expected.
    """
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = list(compare_metadata(context, schema.metadata))
    if not legacy:
        return found
    return [
        diff for diff in found
        if not (
            isinstance(diff, list) and len(diff) == 1 and diff[0][0] == "modify_nullable"
            and schema.metadata.tables[diff[0][2]].c[diff[0][3]].primary_key
            and diff[0][5] is True and diff[0][6] is False
        )
    ]


def test_sqlite_is_migrated_up_from_empty(sqlite_engine: Engine) -> None:
    migrations.upgrade(sqlite_engine)
    assert set(inspect(sqlite_engine).get_table_names()) == TABLES | {"alembic_version"}
    assert revision(sqlite_engine) == HEAD
    assert differences(sqlite_engine) == []
    migrations.upgrade(sqlite_engine)  # a second run finds nothing to do
    assert revision(sqlite_engine) == HEAD


@pytest.mark.services
def test_postgresql_is_migrated_up_from_empty(postgres_engine: Engine) -> None:
    migrations.upgrade(postgres_engine)
    assert set(inspect(postgres_engine).get_table_names()) == TABLES | {"alembic_version"}
    assert revision(postgres_engine) == HEAD
    assert differences(postgres_engine) == []
    migrations.upgrade(postgres_engine)
    assert revision(postgres_engine) == HEAD


@pytest.mark.services
def test_postgresql_gets_native_types(postgres_engine: Engine) -> None:
    migrations.upgrade(postgres_engine)
    with postgres_engine.connect() as conn:
        types = {
            (table, column): (data_type, identity)
            for table, column, data_type, identity in conn.exec_driver_sql(
                "SELECT table_name, column_name, data_type, is_identity "
                "FROM information_schema.columns WHERE table_schema = 'public'"
            )
        }
    assert types["messages", "received_at"] == ("timestamp with time zone", "NO")
    assert types["deliveries", "permitted"] == ("boolean", "NO")
    assert types["audit_entries", "entry"] == ("bytea", "NO")
    assert types["audit_entries", "idx"] == ("bigint", "NO")
    assert types["outbox", "id"] == ("bigint", "YES")


@sqlite_only
@pytest.mark.parametrize("version", [sqlite_legacy.LAST, 8, 1])
def test_a_database_from_an_earlier_release_is_finished_and_stamped(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "dipgw.sqlite3"
    if version == 1:
        # Step 1 has no audit_entries or policy_versions: an empty database of that day.
        with sqlite3.connect(path) as conn:
            for statement in sqlite_legacy.STEPS[0].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("PRAGMA user_version=1")
    else:
        legacy_database(path, version)
    migrations.upgrade_sqlite_file(path)
    for engine in sqlite_file(path):
        assert revision(engine) == HEAD
        assert differences(engine, legacy=True) == []
        if version == 1:
            continue
        with engine.connect() as conn:
            message = conn.execute(select(schema.messages)).one()
            delivery = conn.execute(select(schema.deliveries)).one()
            outbox = conn.execute(select(schema.outbox)).one()
            reason = conn.execute(select(schema.policy_versions.c.reason)).scalar_one()
            entry = conn.execute(select(schema.audit_entries.c.leaf_hash)).scalar_one()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (sqlite_legacy.LAST,)
    if version == 1:
        return
    assert message.message_id == "m1" and message.document_json == '{"a":1}'
    assert message.received_at.isoformat(timespec="microseconds") == AT
    assert delivery.permitted is True and delivery.consent_based is False
    assert outbox.attempts == 0 and outbox.published_at is None
    # Step 13 ran only for the older database, taking the reason from the signed audit
    # entry as it did before Alembic; at 13 the (unset) column was left alone.
    assert reason == ("Probation asked" if version < sqlite_legacy.LAST else None)
    assert entry == b"\x01" * 32


@sqlite_only
def test_a_legacy_upgrade_that_fails_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "dipgw.sqlite3"
    legacy_database(path, 8)
    with sqlite3.connect(path) as conn:
        # Step 10 creates console_sessions; a table in its way makes step 10 fail.
        conn.execute("CREATE TABLE console_sessions (id TEXT)")
    with pytest.raises(Exception, match="console_sessions"):
        migrations.upgrade_sqlite_file(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (8,)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(deliveries)")}
        assert "consent_record" not in columns  # step 9 rolled back with the rest
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "alembic_version" not in tables


def test_a_database_the_gateway_did_not_make_is_refused(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE something_else (id INTEGER)")
    with pytest.raises(migrations.MigrationError, match="something_else"):
        migrations.upgrade(sqlite_engine)


def shape(path: Path) -> dict[str, Any]:
    """A SQLite database's schema, normalised for comparison: per table its columns in
    order (name, declared type, default, primary key position, NOT NULL), primary key,
    foreign keys, unique constraints and AUTOINCREMENT, and every index's SQL.

    NOT NULL is left out for primary key columns: the earlier releases' ``TEXT PRIMARY
    KEY`` lets SQLite store NULL keys (a quirk kept for compatibility,
    sqlite.org/lang_createtable.html#the_primary_key) where the baseline says NOT NULL;
    the gateway never writes a NULL key, so the two hold the same data."""
    with sqlite3.connect(path) as conn:
        tables = sorted(
            name for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version'"
            )
        )
        result: dict[str, Any] = {}
        for table in tables:
            sql = conn.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (table,)
            ).fetchone()[0]
            columns = [
                (name, kind.upper(), default, pk, bool(notnull) if not pk else None)
                for _cid, name, kind, notnull, default, pk in conn.execute(
                    f"PRAGMA table_info({table})"
                )
            ]
            foreign_keys = sorted(
                (row[2], row[3], row[4])
                for row in conn.execute(f"PRAGMA foreign_key_list({table})")
            )
            unique = sorted(
                tuple(column for (_seq, _cid, column) in conn.execute(
                    f"PRAGMA index_info({name})"
                ))
                for _seq, name, is_unique, origin, _partial in conn.execute(
                    f"PRAGMA index_list({table})"
                )
                if is_unique and origin == "u"
            )
            result[table] = {
                "columns": columns,
                "foreign_keys": foreign_keys,
                "unique": unique,
                "autoincrement": "AUTOINCREMENT" in sql.upper(),
            }
        result["indexes"] = {
            name: re.sub(r"\s+", "", sql).lower()
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    return result


@sqlite_only
def test_the_baseline_is_the_schema_the_earlier_releases_made(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.sqlite3"
    with sqlite3.connect(legacy) as conn:
        for script in sqlite_legacy.STEPS:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
    made = tmp_path / "alembic.sqlite3"
    for engine in sqlite_file(made):
        with engine.begin() as conn:
            command.upgrade(migrations.config(conn), migrations.BASELINE)
    assert shape(made) == shape(legacy)
    assert set(shape(made)) == BASELINE_TABLES | {"indexes"}
