"""The shared query helpers behave the same on SQLite and PostgreSQL: a hot statement
stores exactly what plain Core stores and reads back what Core reads, and an insert of a
row already there is skipped and counted as such."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, case, insert, literal, select

from gateway.storage import schema
from gateway.storage.engine import Database
from gateway.storage.rows import HotStatement, insert_ignoring_duplicates, json_text

AT = datetime(2026, 12, 2, 10, 0, 0, 123456, tzinfo=UTC)
HOT = HotStatement(insert(schema.token_uses))


async def test_a_hot_statement_stores_what_core_stores(database: Database) -> None:
    def write(conn: Connection) -> list[tuple[object, ...]]:
        HOT.execute(conn, {"issuer": "POL-SFK", "jti": "hot", "expires_at": AT})
        conn.execute(insert(schema.token_uses),
                     {"issuer": "POL-SFK", "jti": "core", "expires_at": AT})
        raw = conn.exec_driver_sql("SELECT jti, expires_at FROM token_uses ORDER BY jti")
        return [tuple(row) for row in raw]

    (core, core_at), (hot, hot_at) = await database.transaction(write)
    assert (core, hot) == ("core", "hot")
    assert core_at == hot_at


async def test_a_hot_query_reads_what_core_reads(database: Database) -> None:
    """Values converted by their column types (``Timestamp`` text to an aware datetime on
    SQLite), a literal written into the statement filled in, NULL left NULL."""
    tokens = schema.token_uses
    query = (
        select(tokens.c.jti, tokens.c.expires_at,
               case((tokens.c.issuer == literal("POL-SFK"), tokens.c.issuer)).label("mine"))
        .where(tokens.c.expires_at >= bindparam("since", type_=tokens.c.expires_at.type))
        .order_by(tokens.c.jti)
    )

    def read(conn: Connection) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        for issuer, jti in (("POL-SFK", "a"), ("CJIT-NFK", "b")):
            HOT.execute(conn, {"issuer": issuer, "jti": jti, "expires_at": AT})
        core = [tuple(row) for row in conn.execute(query, {"since": AT})]
        return HotStatement(query).rows(conn, {"since": AT}), core

    hot, core = await database.transaction(read)
    assert hot == core == [("a", AT, "POL-SFK"), ("b", AT, None)]


async def test_a_duplicate_is_skipped_and_counted(database: Database) -> None:
    row = {"issuer": "POL-SFK", "jti": "once", "expires_at": AT}

    def write(conn: Connection) -> tuple[int, int, int, list[str]]:
        first = insert_ignoring_duplicates(conn, schema.token_uses, row)
        again = insert_ignoring_duplicates(conn, schema.token_uses, row)
        many = insert_ignoring_duplicates(
            conn, schema.token_uses, [row, {**row, "jti": "twice"}])
        stored = conn.execute(select(schema.token_uses.c.jti).order_by("jti")).scalars()
        return first, again, many, list(stored)

    assert await database.transaction(write) == (1, 0, 1, ["once", "twice"])


def test_json_text_is_the_canonical_form() -> None:
    assert json_text({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


async def test_each_commit_is_observed_with_its_time_and_size(database: Database) -> None:
    seen: list[tuple[float, int]] = []
    database.observe_commits(lambda seconds, operations: seen.append((seconds, operations)))
    await database.transaction(
        lambda conn: conn.execute(insert(schema.token_uses),
                                  {"issuer": "POL-SFK", "jti": "seen", "expires_at": AT}))
    assert len(seen) == 1 and seen[0][0] >= 0 and seen[0][1] == 1
