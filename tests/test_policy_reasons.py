"""Why a policy version was proposed is kept with it: the console's history and the API's
versions list read it from the version, and a database from before the reason column takes
each reason from that version's signed policy.proposed audit entry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import Settings
from gateway.domain.model import Role
from gateway.storage.engine import SqliteDatabase
from gateway.storage.policy_versions import PolicyVersionStore
from gateway.storage.sqlite_legacy import STEPS
from tests.backends import sqlite_only
from tests.conftest import ROOT, bearer

RA1 = ("      type: ra1_notice\n      route: enforcement\n"
       "      sender: police\n      recipient: cjit\n")
WIDER = (ROOT / "policies" / "dip-default.yaml").read_text(encoding="utf-8").replace(
    RA1, RA1.replace("recipient: cjit", "recipient: [cjit, probation]"))


async def test_the_reason_given_is_listed_with_the_version(
    client: TestClient[Any, Any], settings: Settings,
) -> None:
    proposed = await client.post("/v1/policy/versions",
                                 headers=bearer(settings, "CJIT-NFK", Role.IG_LEAD),
                                 json={"text": WIDER, "reason": "Probation asked, H 4.6.1"})
    assert proposed.status == 201, await proposed.text()
    version = (await proposed.json())["version"]
    answer = await client.get("/v1/policy/versions",
                              headers=bearer(settings, "CJIT-NFK", Role.IG_LEAD))
    assert answer.status == 200, await answer.text()
    listed = await answer.json()
    found = [v for v in listed["versions"] if v["version"] == version]
    assert found and found[0]["reason"] == "Probation asked, H 4.6.1"


@sqlite_only
async def test_an_older_database_takes_each_reason_from_the_audit_log(tmp_path: Path) -> None:
    path = tmp_path / "dipgw.sqlite3"
    before = len(STEPS) - 1
    with sqlite3.connect(path) as conn:
        for script in STEPS[:before]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={before}")
        for version in ("sha256:aaa", "sha256:bbb"):
            conn.execute(
                "INSERT INTO policy_versions (version, name, source_text, author, "
                "proposed_at) VALUES (?, 'dip-default', 'x', 'cjit-nfk.ig-lead', "
                "'2026-11-30T10:00:00.000000Z')", (version,))
        entry = {"action": "policy.proposed", "at": "2026-11-30T10:00:00.000000Z",
                 "details": {"version": "sha256:aaa", "reason": "Probation asked"}}
        conn.execute("INSERT INTO audit_entries (idx, entry, leaf_hash) VALUES (0, ?, ?)",
                     (json.dumps(entry).encode(), b"\0" * 32))
    db = SqliteDatabase(path)
    await db.open()
    try:
        versions = {v.version: v.reason for v in await PolicyVersionStore(db).all()}
    finally:
        await db.close()
    assert versions == {"sha256:aaa": "Probation asked", "sha256:bbb": None}
