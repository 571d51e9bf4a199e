"""The data directory is 0700 and the database files 0600, whatever the umask.

The database holds special category health data (UK GDPR Art. 9): no other local account
may read it, nor list the directory it lives in. SQLite gives ``-wal`` and ``-shm`` the main
file's mode, so all three are checked after a write has made them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.http.services import SERVICES
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.storage.engine import SqliteDatabase
from tests.backends import sqlite_only

pytestmark = sqlite_only


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022 umask, under which files default to 0644: a stricter umask in the
    test environment would otherwise let these tests pass without the fix."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def settings(tmp_path: Path, usual_umask: None) -> Settings:
    return Settings(data_dir=tmp_path / "var", relay_interval_s=0.05)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def database_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def assert_private(path: Path) -> None:
    assert mode(path.parent) == 0o700, oct(mode(path.parent))
    for file in database_files(path):
        assert file.exists(), file
        assert mode(file) == 0o600, (file.name, oct(mode(file)))


async def test_gateway_data_directory_and_database_are_owner_only(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    assert_private(settings.sqlite_path)
    services = client.app[SERVICES]
    await services.audit.record(AuditEvent(
        action=AuditAction.CONSULTED, at=datetime.now(UTC), actor="test/permissions",
        details={"what": "permissions"},
    ))
    assert_private(settings.sqlite_path)


async def write_once(path: Path) -> None:
    db = SqliteDatabase(path)
    await db.open()
    try:
        await db.transaction(lambda conn: conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)"))
        await db.transaction(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (1)"))
        assert_private(path)
    finally:
        await db.close()


async def test_a_new_data_directory_is_created_0700(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "a" / "b" / "dipgw.sqlite3"
    await write_once(path)
    assert mode(path) == 0o600


async def test_an_existing_open_directory_and_files_are_tightened(
    tmp_path: Path, usual_umask: None
) -> None:
    """Left 0755/0644 by an earlier version, or after a crash left the WAL behind."""
    directory = tmp_path / "var"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    path = directory / "dipgw.sqlite3"
    await write_once(path)
    for file in database_files(path):
        file.touch()
        file.chmod(0o644)
    directory.chmod(0o777)
    await write_once(path)
