"""Versioned schema migrations (Alembic) for SQLite and PostgreSQL, run from code.

``upgrade`` brings any database to the newest revision: an empty one from nothing, and a
SQLite database made by a release before Alembic (numbered 1 to 13 in ``PRAGMA
user_version``, no ``alembic_version`` table) by finishing its old steps
(``gateway.storage.sqlite_legacy``) and stamping the baseline revision, which is that same
schema. The Alembic configuration is built here, so no ``alembic.ini`` is needed; the
scripts live in this package and ship with it.

A new revision: ``alembic -x`` is not needed; from a checkout run
``.venv/bin/python -c "from gateway.storage import migrations; migrations.new_revision('why')"``
and spell out its tables in the file (a revision never imports ``gateway.storage.schema``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, NullPool, create_engine, func, inspect, select
from sqlalchemy.engine import URL

from gateway.storage import sqlite_legacy

SCRIPT_LOCATION = Path(__file__).resolve().parent
BASELINE = "0001"

# Serialises schema upgrades between gateway processes sharing one PostgreSQL database
# (pg_advisory_xact_lock, released at commit): the second process waits, then finds the
# schema current. An arbitrary constant, "dipgw" in ASCII.
_PG_LOCK = 0x6469706777


class MigrationError(RuntimeError):
    """The database cannot be brought to the gateway's schema."""


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for this package's scripts, on ``connection`` if given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(bind: Engine | Connection) -> None:
    """Bring the database behind ``bind`` to the newest revision, in one transaction.

    Given an engine, or a connection with no transaction open, this opens the transaction
    itself: on SQLite ``BEGIN IMMEDIATE`` (the write lock first, so two processes opening
    one file migrate one after the other), on PostgreSQL an advisory lock. Given a
    connection already in a transaction, it runs inside that one and leaves the commit and
    any locking to the caller.
    """
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            _upgrade_locked(connection)
    elif bind.in_transaction():
        _upgrade(bind)
    else:
        _upgrade_locked(bind)


def upgrade_sqlite_file(path: Path) -> None:
    """``upgrade`` the SQLite database file at ``path`` on a connection of its own."""
    engine = create_engine(URL.create("sqlite", database=str(path)), poolclass=NullPool)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def new_revision(message: str) -> None:
    """Write an empty revision file after the newest, for a developer to fill in."""
    command.revision(config(), message=message)


def _upgrade_locked(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # SQLAlchemy's pysqlite AUTOCOMMIT hands transaction control to us (the DB-API
        # connection's isolation_level None), so BEGIN IMMEDIATE is ours to emit and the
        # DDL is transactional (SQLAlchemy's "Serializable isolation / Savepoints /
        # Transactional DDL" notes for pysqlite).
        # BEGIN goes straight to the DB-API cursor, before SQLAlchemy's autobegin would
        # run an engine's own "begin" hook (gateway.storage.engine emits BEGIN IMMEDIATE
        # there too, unless a transaction is already open).
        raw = connection.execution_options(isolation_level="AUTOCOMMIT")
        cursor = raw.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            _upgrade(raw)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return
    if connection.dialect.name == "postgresql":
        # READ COMMITTED, whatever the engine's default: each statement then sees what a
        # process that held the lock before us committed, where a SERIALIZABLE snapshot
        # taken as the lock was requested would not (PostgreSQL manual, "Transaction
        # Isolation").
        connection = connection.execution_options(isolation_level="READ COMMITTED")
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(select(func.pg_advisory_xact_lock(_PG_LOCK)))
        _upgrade(connection)


def _upgrade(connection: Connection) -> None:
    cfg = config(connection)
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables:
        legacy = 0
        if connection.dialect.name == "sqlite":
            legacy = int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())
        if legacy:
            sqlite_legacy.finish(connection, legacy)
            command.stamp(cfg, BASELINE)
        elif tables:
            raise MigrationError(
                f"the database has tables ({', '.join(sorted(tables))}) but no dipgw "
                "schema version (no alembic_version table, PRAGMA user_version 0); "
                "point the gateway at an empty database or one it made"
            )
    command.upgrade(cfg, "head")
