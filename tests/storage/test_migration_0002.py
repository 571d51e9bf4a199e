"""Revision 0002 on SQLite and PostgreSQL: ``audit_head`` holds the audit log's size
whether the log was empty or not, the lease columns are there, the result is what
``gateway.storage.schema`` describes, and the revision goes back down to 0001."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, NullPool, create_engine, insert, inspect, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from gateway.storage import migrations, schema
from gateway.storage.engine import database_url
from tests.storage.test_migrations import HEAD, differences, revision


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database of each back-end in turn."""
    if request.param == "sqlite":
        url = URL.create("sqlite", database=str(tmp_path / "dipgw.sqlite3"))
    else:
        url = database_url(request.getfixturevalue("postgres_url"))
    made = create_engine(url, poolclass=NullPool)
    yield made
    made.dispose()


def to(engine: Engine, target: str, *, down: bool = False) -> None:
    with engine.begin() as conn:
        (command.downgrade if down else command.upgrade)(migrations.config(conn), target)


def head_rows(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [(row.id, row.size) for row in conn.execute(select(schema.audit_head))]


def test_an_empty_database_gets_an_empty_head(engine: Engine) -> None:
    migrations.upgrade(engine)
    assert revision(engine) == HEAD
    assert head_rows(engine) == [(1, 0)]
    assert differences(engine) == []


def test_a_logged_database_gets_its_size_as_the_head(engine: Engine) -> None:
    to(engine, migrations.BASELINE)
    with engine.begin() as conn:
        conn.execute(insert(schema.audit_entries), [
            {"idx": idx, "entry": b"{}", "leaf_hash": bytes([idx]) * 32} for idx in range(3)
        ])
    migrations.upgrade(engine)
    assert revision(engine) == HEAD
    assert head_rows(engine) == [(1, 3)]
    assert differences(engine) == []
    for table in ("outbox", "dispatches"):
        columns = {column["name"]: column for column in inspect(engine).get_columns(table)}
        assert columns["lease_until"]["nullable"] and columns["leased_by"]["nullable"]


def test_the_head_is_one_row(engine: Engine) -> None:
    migrations.upgrade(engine)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(schema.audit_head).values(id=2, size=0))


def test_0002_goes_down_to_the_baseline_and_up_again(engine: Engine) -> None:
    migrations.upgrade(engine)
    to(engine, migrations.BASELINE, down=True)
    assert "audit_head" not in inspect(engine).get_table_names()
    assert "lease_until" not in {c["name"] for c in inspect(engine).get_columns("outbox")}
    migrations.upgrade(engine)
    assert head_rows(engine) == [(1, 0)]
    assert differences(engine) == []
