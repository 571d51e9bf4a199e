"""What SQLAlchemy Core costs per message, beside today's raw sqlite3, in the same run.

    .venv/bin/python bench/storage_core.py --messages 2000 --runs 7

Times the writes of the accept transaction (``SqliteMessages.accept`` for one message
with two recipients: INSERT messages, status_events, two deliveries, two outbox rows and
one audit_entries row), each message in its own savepoint inside a group-commit batch of
--batch messages, as the SQLite runner does, three ways:

(a) raw sqlite3 with ``?`` SQL, as ``gateway/storage/sqlite.py`` does today (baseline);
(b) SQLAlchemy Core statements executed on a ``Connection`` (the compiled cache on, the
    column types of ``gateway.storage.schema`` converting datetimes and flags), batches
    and savepoints (on the DB-API cursor) through ``Connection.begin``, as
    ``gateway.storage.engine.SqliteDatabase`` runs them;
(c) the same Core statements compiled once to SQL text per dialect at import, executed on
    the runner's DB-API cursor with values already in the driver's form.

Then (b) and (c) on PostgreSQL (--postgres URL; a scratch database is created and
dropped), one transaction per message as ``PostgresDatabase`` runs them.

Every figure is this process's CPU time (``time.process_time``) in microseconds per
message, min and median of --runs runs: CPU, not wall time, so that other work on a shared
machine does not count, and comparable with the gateway's CPU per message (on PostgreSQL
the server's own CPU is not in it; the round trips are not either). Durability is
left out on purpose (SQLite ``synchronous=OFF``, PostgreSQL ``synchronous_commit=off``):
the fsync per batch or commit is the same whichever way the statements are issued, and
would only hide the difference measured here. The difference is related to the
gateway's ~2.3 ms of CPU per accepted message end to end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import Connection, Engine, NullPool, create_engine, insert  # noqa: E402
from sqlalchemy.dialects import postgresql, sqlite  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from gateway.storage import migrations, schema  # noqa: E402
from gateway.storage.engine import database_url, sqlite_engine  # noqa: E402

END_TO_END_CPU_US = 2300.0
RECIPIENTS = ("CJIT-NFK", "PROB-NFK")

# (a): the SQL gateway/storage/sqlite.py issues today.
RAW = {
    "messages": "INSERT INTO messages (message_id, type, sender, route, content_hash, "
    "document_json, received_at, submitted_by, audit_index, subject_pnc, "
    "subject_name_dob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "status_events": "INSERT INTO status_events (message_id, status, at) VALUES (?, ?, ?)",
    "deliveries": "INSERT INTO deliveries (message_id, recipient, position, permitted, "
    "decision_json, payload_json, consent_based, resolved_by, consent_record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "outbox": "INSERT INTO outbox (message_id, recipient, created_at, next_attempt_at) "
    "VALUES (?, ?, ?, ?)",
    "audit_entries": "INSERT INTO audit_entries (idx, entry, leaf_hash) VALUES (?, ?, ?)",
}

# (b): Core statements, and the columns each is given.
COLUMNS = {
    "messages": ("message_id", "type", "sender", "route", "content_hash", "document_json",
                 "received_at", "submitted_by", "audit_index", "subject_pnc",
                 "subject_name_dob"),
    "status_events": ("message_id", "status", "at"),
    "deliveries": ("message_id", "recipient", "position", "permitted", "decision_json",
                   "payload_json", "consent_based", "resolved_by", "consent_record"),
    "outbox": ("message_id", "recipient", "created_at", "next_attempt_at"),
    "audit_entries": ("idx", "entry", "leaf_hash"),
}
CORE = {name: insert(schema.metadata.tables[name]) for name in COLUMNS}

# (c): the same statements compiled once per dialect, to the driver's own parameter style
# (named for sqlite3, pyformat for psycopg), so each takes a dict of driver-ready values.
COMPILED = {
    dialect_name: {
        name: str(CORE[name].compile(dialect=dialect, column_keys=list(columns)))
        for name, columns in COLUMNS.items()
    }
    for dialect_name, dialect in (
        ("sqlite", sqlite.dialect(paramstyle="named")),
        ("postgresql", postgresql.psycopg.dialect()),
    )
}


def ts(moment: datetime) -> str:
    """gateway.storage.sqlite._ts: the text SQLite stores for a moment."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class Message:
    """One accepted message's values, made before timing starts."""

    def __init__(self, index: int, received_at: datetime) -> None:
        self.message_id = str(uuid.uuid4())
        self.received_at = received_at
        self.audit_index = index
        subject = {"pnc": f"26/{index:07d}X", "name": "Alex Example", "dob": "1990-01-01"}
        self.document = json.dumps(
            {"subject": subject, "offence": "theft", "notes": "x" * 1500}, sort_keys=True
        )
        self.decision = json.dumps({"decision": "permit", "rule": "ra1-statutory"})
        self.entry = os.urandom(600)
        self.leaf_hash = os.urandom(32)


_AUDIT_INDEX = itertools.count()


def messages(count: int) -> list[Message]:
    """Fresh messages; audit indices keep counting across calls, since the PostgreSQL
    database is shared by every run."""
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    return [Message(next(_AUDIT_INDEX), start + timedelta(milliseconds=i))
            for i in range(count)]


def write_raw(conn: sqlite3.Connection, m: Message) -> None:
    at = ts(m.received_at)
    conn.execute(RAW["messages"], (m.message_id, "ra1_notice", "POL-NFK", "enforcement",
                                   "sha256:x", m.document, at, "POL-NFK", m.audit_index,
                                   "26/0000001X", "alex|1990-01-01"))
    conn.execute(RAW["status_events"], (m.message_id, "accepted", at))
    for position, recipient in enumerate(RECIPIENTS):
        conn.execute(RAW["deliveries"], (m.message_id, recipient, position, 1, m.decision,
                                         None, 0, None, None))
        conn.execute(RAW["outbox"], (m.message_id, recipient, at, at))
    conn.execute(RAW["audit_entries"], (m.audit_index, m.entry, m.leaf_hash))


def write_core(conn: Connection, m: Message) -> None:
    at = m.received_at
    conn.execute(CORE["messages"], {
        "message_id": m.message_id, "type": "ra1_notice", "sender": "POL-NFK",
        "route": "enforcement", "content_hash": "sha256:x", "document_json": m.document,
        "received_at": at, "submitted_by": "POL-NFK", "audit_index": m.audit_index,
        "subject_pnc": "26/0000001X", "subject_name_dob": "alex|1990-01-01",
    })
    conn.execute(CORE["status_events"], {"message_id": m.message_id, "status": "accepted",
                                         "at": at})
    for position, recipient in enumerate(RECIPIENTS):
        conn.execute(CORE["deliveries"], {
            "message_id": m.message_id, "recipient": recipient, "position": position,
            "permitted": True, "decision_json": m.decision, "payload_json": None,
            "consent_based": False, "resolved_by": None, "consent_record": None,
        })
        conn.execute(CORE["outbox"], {"message_id": m.message_id, "recipient": recipient,
                                      "created_at": at, "next_attempt_at": at})
    conn.execute(CORE["audit_entries"], {"idx": m.audit_index, "entry": m.entry,
                                         "leaf_hash": m.leaf_hash})


def write_compiled(conn: Connection, m: Message) -> None:
    """(c): the repository converts values itself (``ts`` on SQLite, as today)."""
    on_sqlite = conn.dialect.name == "sqlite"
    sql = COMPILED[conn.dialect.name]
    at: Any = ts(m.received_at) if on_sqlite else m.received_at
    yes: Any = 1 if on_sqlite else True
    no: Any = 0 if on_sqlite else False
    cursor = conn.connection.cursor()
    cursor.execute(sql["messages"], {
        "message_id": m.message_id, "type": "ra1_notice", "sender": "POL-NFK",
        "route": "enforcement", "content_hash": "sha256:x", "document_json": m.document,
        "received_at": at, "submitted_by": "POL-NFK", "audit_index": m.audit_index,
        "subject_pnc": "26/0000001X", "subject_name_dob": "alex|1990-01-01",
    })
    cursor.execute(sql["status_events"], {"message_id": m.message_id, "status": "accepted",
                                          "at": at})
    for position, recipient in enumerate(RECIPIENTS):
        cursor.execute(sql["deliveries"], {
            "message_id": m.message_id, "recipient": recipient, "position": position,
            "permitted": yes, "decision_json": m.decision, "payload_json": None,
            "consent_based": no, "resolved_by": None, "consent_record": None,
        })
        cursor.execute(sql["outbox"], {"message_id": m.message_id, "recipient": recipient,
                                       "created_at": at, "next_attempt_at": at})
    cursor.execute(sql["audit_entries"], {"idx": m.audit_index, "entry": m.entry,
                                          "leaf_hash": m.leaf_hash})


def sqlite_raw_run(path: Path, batch: list[Message], group: int) -> float:
    """(a), with gateway/storage/sqlite.py's own batch and savepoint statements."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=ON")
    start = time.process_time()
    for first in range(0, len(batch), group):
        conn.execute("BEGIN IMMEDIATE")
        for m in batch[first:first + group]:
            conn.execute("SAVEPOINT operation")
            write_raw(conn, m)
            conn.execute("RELEASE operation")
        conn.execute("COMMIT")
    elapsed = time.process_time() - start
    conn.close()
    return elapsed


def sqlite_core_run(
    engine: Engine, write: Callable[[Connection, Message], None], batch: list[Message],
    group: int,
) -> float:
    """(b) or (c), with the batches and savepoints of gateway.storage.engine."""
    with engine.connect() as conn:
        # On the DB-API cursor: through SQLAlchemy it would autobegin, and SQLite refuses
        # to change the safety level inside a transaction.
        conn.connection.cursor().execute("PRAGMA synchronous=OFF")
        start = time.process_time()
        for first in range(0, len(batch), group):
            with conn.begin():
                cursor = conn.connection.cursor()
                for m in batch[first:first + group]:
                    cursor.execute("SAVEPOINT operation")
                    write(conn, m)
                    cursor.execute("RELEASE operation")
        return time.process_time() - start


def postgres_run(
    engine: Engine, write: Callable[[Connection, Message], None], batch: list[Message]
) -> float:
    """(b) or (c) on PostgreSQL: a transaction per message, as PostgresDatabase runs."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET synchronous_commit = off")
        conn.commit()
        start = time.process_time()
        for m in batch:
            with conn.begin():
                write(conn, m)
        return time.process_time() - start


def fresh_sqlite(directory: Path, name: str) -> Path:
    path = directory / f"{name}.sqlite3"
    migrations.upgrade_sqlite_file(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return path


def summary(label: str, seconds: list[float], count: int, baseline: float | None) -> float:
    per = sorted(s / count * 1e6 for s in seconds)
    low, median = per[0], statistics.median(per)
    beside = ""
    if baseline is not None:
        extra = median - baseline
        beside = (f"  {median / baseline:5.2f}x (a), {extra:+7.1f} us "
                  f"= {extra / END_TO_END_CPU_US:+6.1%} of {END_TO_END_CPU_US / 1000:.1f} ms")
    print(f"  {label:<44} min {low:7.1f}  median {median:7.1f} us CPU/message{beside}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32, help="messages per group commit")
    parser.add_argument("--postgres", default=os.environ.get(
        "DIPGW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "pb": [], "pc": []}

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for run in range(args.runs):
            # Interleaved, so drift in the machine's speed falls on all three alike.
            batch = messages(args.messages)
            times["a"].append(sqlite_raw_run(fresh_sqlite(directory, f"a{run}"), batch,
                                             args.batch))
            for key, write in (("b", write_core), ("c", write_compiled)):
                engine = sqlite_engine(fresh_sqlite(directory, f"{key}{run}"))
                times[key].append(sqlite_core_run(engine, write, messages(args.messages),
                                                  args.batch))
                engine.dispose()

    print(f"SQLite, {args.messages} messages x {args.runs} runs, "
          f"group commit of {args.batch} (7 INSERTs and a savepoint per message):")
    baseline = summary("(a) raw sqlite3 (today)", times["a"], args.messages, None)
    summary("(b) Core on a Connection", times["b"], args.messages, baseline)
    summary("(c) Core compiled at import, DB-API cursor", times["c"], args.messages, baseline)

    admin = make_url(args.postgres)
    name = f"dipgw_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin.render_as_string(hide_password=False),
                             autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL: not measured, {admin.render_as_string()} is not reachable ({exc})")
        return
    try:
        engine = create_engine(database_url(admin.set(database=name).render_as_string(
            hide_password=False)), poolclass=NullPool)
        migrations.upgrade(engine)
        for _run in range(args.runs):
            for key, write in (("pb", write_core), ("pc", write_compiled)):
                times[key].append(postgres_run(engine, write, messages(args.messages)))
        engine.dispose()
    finally:
        with psycopg.connect(admin.render_as_string(hide_password=False),
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    print(f"PostgreSQL 127.0.0.1, {args.messages} messages x {args.runs} runs, a transaction "
          "per message (7 INSERTs, BEGIN and COMMIT):")
    summary("(b) Core on a Connection", times["pb"], args.messages, baseline)
    summary("(c) Core compiled at import, DB-API cursor", times["pc"], args.messages, baseline)


if __name__ == "__main__":
    main()
