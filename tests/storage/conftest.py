"""Fixtures for the storage layer: SQLite files in a temporary directory, and a fresh,
empty PostgreSQL database per test (``tests.backends``) when a server answers.

PostgreSQL tests skip when no server accepts a connection at ``DIPGW_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``), and fail instead when
``DIPGW_REQUIRE_SERVICES=1``, as ``tests.services`` does for RabbitMQ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gateway.storage.engine import Database, open_database
from tests.backends import create_database, drop_database, require_postgres


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql://`` URL of a new, empty database, dropped after the test."""
    name = create_database(migrated=False)
    try:
        yield make_url(require_postgres()).set(database=name).render_as_string(
            hide_password=False)
    finally:
        drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Database]:
    """An open, migrated, empty database of each back-end in turn: every query module is
    tested on both, as the gateway runs on both."""
    if request.param == "sqlite":
        db: Database = open_database(None, tmp_path / "dipgw.sqlite3")
    else:
        db = open_database(request.getfixturevalue("postgres_url"), tmp_path / "unused")
    await db.open()
    try:
        yield db
    finally:
        await db.close()
