"""An installed gateway carries the console's templates and static files: every file the
console serves from its package folder is named by pyproject.toml's package data."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT

CONSOLE = ROOT / "gateway" / "console"


def test_every_console_template_and_static_file_is_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["gateway.console"]
    # setuptools reads these patterns as glob does ("**" is any depth, none included).
    packaged = {path for pattern in patterns for path in CONSOLE.glob(pattern)}
    served = [
        path for folder in ("templates", "static")
        for path in (CONSOLE / folder).rglob("*")
        if path.is_file() and not path.name.startswith(".")
    ]
    assert any(path.suffix == ".html" for path in served)
    missing = [path.relative_to(CONSOLE).as_posix() for path in served if path not in packaged]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_every_migration_revision_is_package_data() -> None:
    """Alembic reads its revisions as files; an installed gateway without one could not
    bring a database up to date."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folder = ROOT / "gateway" / "storage" / "migrations"
    patterns = project["tool"]["setuptools"]["package-data"]["gateway.storage.migrations"]
    packaged = {path for pattern in patterns for path in folder.glob(pattern)}
    revisions = sorted((folder / "versions").glob("*.py"))
    assert revisions
    missing = [p.name for p in [*revisions, folder / "script.py.mako"] if p not in packaged]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
