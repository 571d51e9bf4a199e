"""What every query module shares: JSON text as the gateway stores it, inserts that skip a
row already there, and hot statements compiled once per dialect.

Queries are SQLAlchemy Core statements over ``gateway.storage.schema``, one set for SQLite
and PostgreSQL. Most run as plain Core on the transaction's ``Connection``. The few on
every message's path (accepting it, its outbox rows, its delivery, its audit entry) are
``HotStatement``s: compiled once per dialect to SQL text and run on the DB-API cursor,
which bench/storage_core.py measured at 0.94x today's raw sqlite3 against 2.6x for Core
on the ``Connection`` (+208 us a message, 9% of its end-to-end cost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.domain.model import canonical_json


def json_text(value: Any) -> str:
    """A document as stored: canonical JSON (sorted keys, no spaces, UTF-8), the same text
    whose SHA-256 is a message's content hash."""
    return canonical_json(value).decode("utf-8")


def insert_ignoring_duplicates(
    conn: Connection, table: Table, values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
) -> int:
    """Insert unless a row with the same unique key exists; returns how many went in.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, which SQLite (3.35+) and PostgreSQL
    both speak:
    a repeated delivery, dispatch or report is a no-op, never an error, so retried work
    stays idempotent. It is on every message's path (the message row, the token claim),
    so each shape of it is a ``HotStatement``: building it afresh for each call took a
    fifth of the SQLite thread's time in bench/court_results_import.py.
    """
    rows = [values] if isinstance(values, Mapping) else values
    inserted = 0
    for row in rows:
        statement = _insert_ignoring(conn.dialect.name, table, tuple(row))
        # Counted from RETURNING: psycopg reports no rowcount (-1) for this statement.
        inserted += len(statement.execute(conn, row).fetchall())
    return inserted


_IGNORING: dict[tuple[str, str, tuple[str, ...]], HotStatement] = {}


def _insert_ignoring(dialect: str, table: Table, columns: tuple[str, ...]) -> HotStatement:
    """The statement for one table and set of columns, built once per dialect."""
    key = (dialect, table.name, columns)
    known = _IGNORING.get(key)
    if known is None:
        module = postgresql if dialect == "postgresql" else sqlite
        known = HotStatement(
            module.insert(table)
            .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
            .on_conflict_do_nothing()
            .returning(*table.primary_key.columns))
        _IGNORING[key] = known
    return known


def claim_lease(conn: Connection, lease: timedelta) -> timedelta | None:
    """How long a claim on an outbox row or an owed push holds, on this back-end.

    PostgreSQL: ``lease``. Several gateway processes share the database, so a claimed row
    is kept from the others until it is settled or the lease runs out (its claimer died).
    SQLite: no lease. One gateway process owns a database file (its write thread), and its
    relay and dispatcher each drain one batch at a time, so nothing else can claim the row;
    a lease would only hold back, after a crash, what the restarted process must send now.
    """
    return None if conn.dialect.name == "sqlite" else lease


Processor = Callable[[Any], Any] | None
_REQUIRED = object()


class HotStatement:
    """A Core statement compiled once per dialect, run on the DB-API cursor.

    Values pass through each column type's own bind processor (``Timestamp`` to ISO text
    on SQLite, ``Flag`` to 0/1), so what is stored is exactly what plain Core would store;
    only SQLAlchemy's per-execution bookkeeping is skipped.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, conn: Connection) -> _Compiled:
        dialect = conn.dialect
        known = self._compiled.get(dialect.name)
        if known is None:
            compiled = self._statement.compile(dialect=dialect)
            if not isinstance(compiled, SQLCompiler):
                raise TypeError(f"not a SQL statement: {self._statement!r}")
            binds = compiled.binds
            # sqlite3 takes "?" in order (qmark); psycopg takes "%(name)s" (pyformat).
            names = compiled.positiontup if compiled.positional else list(binds)
            # A SELECT's (or RETURNING's) columns convert as Core would convert them:
            # the type as this dialect implements it (``Timestamp`` as text on SQLite).
            returned = getattr(self._statement, "selected_columns", ())
            known = _Compiled(
                str(compiled), bool(compiled.positional),
                tuple((name, binds[name].type.dialect_impl(dialect).bind_processor(dialect),
                       _REQUIRED if binds[name].required else binds[name].effective_value)
                      for name in names or ()),
                tuple(column.type.dialect_impl(dialect).result_processor(dialect, None)
                      for column in returned))
            self._compiled[dialect.name] = known
        return known

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Run with ``params`` (by bind name: the column's, for an insert); returns the
        DB-API cursor."""
        compiled = self._for(conn)
        values = []
        for name, process, fixed in compiled.order:
            # A value written into the statement (a literal in a comparison) is a bind
            # parameter too, with its value given; the caller names only the others.
            value = params[name] if fixed is _REQUIRED else params.get(name, fixed)
            values.append((name, process(value) if process is not None else value))
        # The driver's own cursor, not the pool proxy's wrapper around it.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if compiled.positional:
            cursor.execute(compiled.sql, tuple(value for _, value in values))
        else:
            cursor.execute(compiled.sql, dict(values))
        return cursor

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a SELECT with ``params`` (by bind name); every row, each value converted by
        its column's type as Core's ``Result`` would (``Timestamp`` text to a datetime)."""
        compiled = self._for(conn)
        found = self.execute(conn, params).fetchall()
        if not any(compiled.results):
            return [tuple(row) for row in found]
        return [
            tuple(value if convert is None else convert(value)
                  for convert, value in zip(compiled.results, row, strict=True))
            for row in found
        ]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positional: bool
    order: tuple[tuple[str, Processor, Any], ...]
    results: tuple[Processor, ...]
