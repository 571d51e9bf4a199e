"""The directory view never goes back to rows read before a change committed.

The race (seen on PostgreSQL under load, ``test_oidc.py``): a periodic or notified refresh
reads the organisations, a request changes one and refreshes the view, then the first
refresh finishes and puts its older rows back — the request's change vanishes from this
process until the next refresh."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from gateway.domain.model import Contact, Organisation, OrgKind
from gateway.services.directory import Directory
from gateway.storage.base import DirectoryRepository


class SlowFirstRead:
    """A repository whose first ``all()`` returns the rows as they were when it started,
    but only once ``release`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = asyncio.Event()
        self.reads = 0

    def _rows(self) -> list[Organisation]:
        return [Organisation("CJIT-SFK", OrgKind.CJIT, self.name, "Suffolk",
                             Contact("SPOC", email="spoc@example.org"))]

    async def all(self) -> list[Organisation]:
        self.reads += 1
        rows = self._rows()
        if self.reads == 1:
            await self.release.wait()
        return rows

    async def people(self) -> list[Any]:
        return []

    async def grants(self) -> list[Any]:
        return []


async def test_a_refresh_that_read_before_a_change_cannot_undo_it() -> None:
    repository = SlowFirstRead("Old name")
    directory = Directory(cast(DirectoryRepository, repository))
    stale = asyncio.create_task(directory.refresh())
    await asyncio.sleep(0)  # the stale refresh has read the old rows and waits

    async def rename() -> None:
        repository.name = "New name"

    changed = asyncio.create_task(directory.change(rename()))
    await asyncio.sleep(0.01)
    repository.release.set()
    await asyncio.gather(stale, changed)

    org = directory.get("CJIT-SFK")
    assert org is not None and org.name == "New name"
