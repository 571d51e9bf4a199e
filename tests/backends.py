"""Which database this run of the suite uses, and reading it from a test.

``DIPGW_TEST_DATABASE=postgresql`` runs every test that builds a gateway on PostgreSQL
(``make test`` runs the suite once per back-end); unset, or ``sqlite``, the embedded
default. On PostgreSQL each test gets a database of its own, made the first time the test
asks for one (``make_settings``) as a copy of a template migrated once per run, and
dropped when the test ends (the autouse fixture in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from gateway.config import Settings
from gateway.storage import migrations
from gateway.storage.engine import database_url
from tests.services import services_required

BACKEND = os.environ.get("DIPGW_TEST_DATABASE", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise pytest.UsageError(
        f"DIPGW_TEST_DATABASE must be sqlite or postgresql, not {BACKEND!r}")
ADMIN_URL = os.environ.get(
    "DIPGW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
sqlite_only = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="about SQLite itself (its files or a pre-Alembic SQLite database); "
           "the suite's SQLite run covers it")
postgresql_only = pytest.mark.skipif(
    BACKEND != "postgresql",
    reason="about several gateway processes on one PostgreSQL database; the suite's "
           "PostgreSQL run (DIPGW_TEST_DATABASE=postgresql, make test) covers it")
START_HINT = "start it with e.g. `pg_ctlcluster 15 main start` (Debian's postgresql package)"
_TEMPLATE = f"dipgw_template_{uuid.uuid4().hex[:12]}"


class _Run:
    """This process's template, the current test's database (tests run one at a time in
    a process), and the copy made ahead for the next test.

    Copying the template and dropping a database take 0.1-0.2 s each, as long as the
    test's gateway takes to start, so both happen on a thread beside the tests: a test
    takes the copy made while the one before it ran, and its database is dropped while
    the next one runs."""

    template_ready: ClassVar[bool] = False
    current: ClassVar[str | None] = None
    spare: ClassVar[Future[str] | None] = None
    drops: ClassVar[list[Future[None]]] = []
    beside: ClassVar[ThreadPoolExecutor] = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="test-databases")


def require_postgres() -> str:
    """The server's admin URL if it accepts a connection; otherwise skip (or fail)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        where = make_url(ADMIN_URL).render_as_string(hide_password=True)
        message = f"PostgreSQL is not reachable at {where} ({str(exc).strip()}); {START_HINT}"
        if services_required():
            pytest.fail(f"{message} [DIPGW_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    return ADMIN_URL


def _url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def create_database(*, migrated: bool) -> str:
    """A new database's name: empty, or a copy of this run's migrated template (a copy
    takes a tenth of a second; migrating every test's database would take far longer)."""
    admin = require_postgres()
    if migrated and not _Run.template_ready:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_TEMPLATE)))
        engine = create_engine(database_url(_url(_TEMPLATE)))
        try:
            migrations.upgrade(engine)
        finally:
            engine.dispose()
        _Run.template_ready = True
    return _new_database(_TEMPLATE if migrated else None)


def _new_database(template: str | None) -> str:
    name = f"dipgw_test_{uuid.uuid4().hex[:16]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)
    return name


def _copy_for_a_test() -> str:
    """A copy of the template for the current test: the one made ahead if there is one;
    another is started for the next test either way."""
    spare = _Run.spare
    _Run.spare = None
    name = spare.result() if spare is not None else create_database(migrated=True)
    _Run.spare = _Run.beside.submit(_new_database, _TEMPLATE)
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def current_database_url() -> str | None:
    """The database the current test's gateway uses: None (SQLite in its data directory)
    on the embedded back-end, else this test's own PostgreSQL database."""
    if BACKEND == "sqlite":
        return None
    if _Run.current is None:
        _Run.current = _copy_for_a_test()
    return _url(_Run.current)


@contextmanager
def database_for_each_test() -> Iterator[None]:
    """Drop the test's PostgreSQL database, if it made one, once the test ends (beside
    the next test; :func:`drop_template` waits for every drop)."""
    try:
        yield
    finally:
        if _Run.current is not None:
            _Run.drops = [d for d in _Run.drops if not d.done()]
            _Run.drops.append(_Run.beside.submit(drop_database, _Run.current))
            _Run.current = None


@contextmanager
def database_for_module() -> Iterator[str | None]:
    """The database of a gateway that serves a whole module (a module-scoped fixture),
    which must outlive every test's own: None (SQLite in the gateway's data directory) on
    the embedded back-end, else a PostgreSQL database of its own, copied from the
    template, dropped when the block ends."""
    if BACKEND == "sqlite":
        yield None
        return
    name = create_database(migrated=True)
    try:
        yield _url(name)
    finally:
        drop_database(name)


def drop_template() -> None:
    """At the end of the run: the copy made ahead, every test's database and the
    template, dropped (a failed drop fails here, not silently)."""
    if _Run.spare is not None:
        _Run.drops.append(_Run.beside.submit(drop_database, _Run.spare.result()))
        _Run.spare = None
    for drop in _Run.drops:
        drop.result()
    _Run.drops = []
    if _Run.template_ready:
        drop_database(_TEMPLATE)
        _Run.template_ready = False


def make_settings(**fields: Any) -> Settings:
    """Settings for a gateway under test, on this run's database."""
    fields.setdefault("database_url", current_database_url())
    return Settings(**fields)


def database_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a ``dipgw`` command these settings' database."""
    return {"DIPGW_DATABASE_URL": settings.database_url} if settings.database_url else {}


def _sqlalchemy_url(settings: Settings) -> str:
    if settings.database_url:
        return database_url(settings.database_url).render_as_string(hide_password=False)
    return f"sqlite:///{settings.sqlite_path}"


def query(settings: Settings, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one SQL statement (named ``:params``) on the gateway's database, read as
    an operator would, beside the gateway; committed at once when it writes."""
    engine = create_engine(_sqlalchemy_url(settings))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def counts(settings: Settings) -> dict[str, int]:
    """Row counts of every stored table but the token ledger, the audit log (it rightly
    grows with every read) and Alembic's own."""
    engine = create_engine(_sqlalchemy_url(settings))
    try:
        names = [t for t in inspect(engine).get_table_names()
                 if t not in ("token_uses", "audit_entries", "audit_head", "alembic_version")]
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()  # noqa: S608
                    for t in names}
    finally:
        engine.dispose()
