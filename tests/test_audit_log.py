"""The signed audit log on the real app: what is logged, who may read it, and that an
exported bundle verifies offline (and fails when tampered with)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.client import GatewayProblem
from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.services.checkpoints import stage_rotation
from gateway.storage.audit_log import AuditLogStore
from gateway.tlog.note import Signer, parse_signed_note, sign_note
from tests.conftest import AgencyFactory, bearer, example_files, load, table_counts
from tests.test_messages_end_to_end import wait_for_inbox

VALID = [load(p) for p in example_files("valid*.json")]


async def audit_entries(client: TestClient[Any, Any], settings: Settings) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        response = await client.get(
            "/v1/audit/entries", params={"from": str(len(found)), "to": str(len(found) + 1000)},
            headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR),
        )
        assert response.status == 200
        page = (await response.json())["entries"]
        found += page
        # Each read adds its own consultation entry, so stop at the first short page.
        if len(page) < 1000:
            return found


async def test_every_message_has_acceptance_decision_disclosure_and_consultation_entries(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory
) -> None:
    for document in VALID:
        await agency(document["from"]).send(document)
    read_by: dict[str, int] = {}
    for document in VALID:
        for code in document["to"]:
            await wait_for_inbox(agency(code), document["message_id"])
            read_by[code] = read_by.get(code, 0) + 1

    entries = await audit_entries(client, settings)

    assert [e["index"] for e in entries] == list(range(len(entries)))
    for document in VALID:
        mine = [e for e in entries if e.get("message_id") == document["message_id"]]
        accepted = [e for e in mine if e["action"] == "message.accepted"]
        assert len(accepted) == 1
        decisions = accepted[0]["details"]["decisions"]
        assert set(decisions) == set(document["to"])
        assert all(d["legal_basis"] and d["rule"] and d["policy_version"]
                   for d in decisions.values())
        assert accepted[0]["subject"].startswith("psn:")
        delivered = {e["recipients"][0] for e in mine if e["action"] == "message.delivered"}
        assert delivered == set(document["to"])
    consultations = [e for e in entries if e["action"] == "consulted"
                     and e["details"]["resource"] == "inbox"]
    for code, reads in read_by.items():
        assert len([e for e in consultations if e["actor"].startswith(code + "/")]) >= reads
    # Pseudonyms, never names, dates of birth or PNC ids.
    text = json.dumps(entries)
    for document in VALID:
        subject = document["subject"]
        assert subject["family_name"] not in text
        assert subject.get("pnc_id", "\x00") not in text


@pytest.mark.parametrize("role", [Role.SYSTEM, Role.SPOC, Role.IG_LEAD])
async def test_only_auditors_read_the_audit_log_s_entries(
    client: TestClient[Any, Any], settings: Settings, role: Role
) -> None:
    for path in ("/v1/audit/entries", "/v1/audit/export", "/v1/audit/disclosures?pnc_id=x"):
        response = await client.get(path, headers=bearer(settings, "CJIT-SFK", role))
        assert response.status == 403, path
    keys = await client.get("/v1/audit/keys", headers=bearer(settings, "CJIT-SFK", role))
    assert keys.status == 200


@pytest.mark.parametrize("role", [Role.SYSTEM, Role.SPOC, Role.IG_LEAD])
async def test_agencies_follow_checkpoints_and_proofs_which_hold_only_hashes(
    client: TestClient[Any, Any], settings: Settings, role: Role
) -> None:
    await client.post("/v1/audit/checkpoint",
                      headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    for path in ("/v1/audit/checkpoint", "/v1/audit/proof/inclusion?index=0"):
        response = await client.get(path, headers=bearer(settings, "CJIT-SFK", role))
        assert response.status == 200, path
    issue = await client.post("/v1/audit/checkpoint", headers=bearer(settings, "CJIT-SFK", role))
    assert issue.status == 403


async def test_reads_of_entries_are_logged_and_hash_only_reads_are_not(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    await client.get("/v1/audit/checkpoint", headers=bearer(settings, "DIP-ASSURE",
                                                           Role.AUDITOR))
    before = len(await audit_entries(client, settings))
    for _ in range(3):
        for path in ("/v1/audit/checkpoint", "/v1/audit/proof/inclusion?index=0"):
            agency = bearer(settings, "CJIT-SFK", Role.SYSTEM)
            assert (await client.get(path, headers=agency)).status == 200, path
    entries = await audit_entries(client, settings)
    # Only the one read of entries in between was logged: polling does not grow the log.
    assert len(entries) == before + 1
    resources = [e["details"]["resource"] for e in entries if e["action"] == "consulted"]
    assert "entries" in resources and "checkpoint" not in resources


async def test_accepted_message_cannot_exist_without_its_audit_entry(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = VALID[0]
    before = table_counts(settings)

    def broken(self: AuditLogStore, transaction: Any, event: Any) -> int:
        raise OSError("audit store unavailable")

    monkeypatch.setattr(AuditLogStore, "append_entry", broken)
    with pytest.raises(GatewayProblem) as failed:
        await agency(document["from"]).send(document)
    monkeypatch.undo()

    assert failed.value.status == 500
    assert table_counts(settings) == before
    answer = await agency(document["from"]).send(document)
    assert isinstance(answer.body["audit_index"], int)


async def _export(client: TestClient[Any, Any], settings: Settings, target: Path) -> Path:
    response = await client.get(
        "/v1/audit/export", headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR)
    )
    assert response.status == 200
    with tarfile.open(fileobj=io.BytesIO(await response.read()), mode="r:gz") as tar:
        tar.extractall(target, filter="data")
    return next(target.iterdir())


def verify(
    bundle: Path, keys: list[str], tmp: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    keyfile = tmp / "keys.txt"
    keyfile.write_text("".join(k + "\n" for k in keys))
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", str(bundle),
         "--public-key", str(keyfile), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )


async def test_exported_bundle_verifies_offline_across_a_key_rotation_and_tampering_fails(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory, tmp_path: Path
) -> None:
    services = client.server.app[SERVICES]
    for document in VALID[:10]:
        await agency(document["from"]).send(document)
    await services.checkpointer.integrate()
    stage_rotation(settings.audit_keys_dir)
    _, rotated = await services.checkpointer.integrate() or (0, "")
    assert len(parse_signed_note(rotated).signatures) == 2
    for document in VALID[10:20]:
        await agency(document["from"]).send(document)
    keys = (await (await client.get(
        "/v1/audit/keys", headers=bearer(settings, "CJIT-SFK"))).text()).split()
    assert len(keys) == 2

    bundle = await _export(client, settings, tmp_path / "export")
    ok = verify(bundle, keys, tmp_path, "--entry", "5")
    assert ok.returncode == 0, ok.stderr
    assert "OK:" in ok.stdout and "entry 5 is included" in ok.stdout

    only_new = verify(bundle, keys[:1], tmp_path)
    assert only_new.returncode == 1 and "no signature by a trusted key" in only_new.stderr

    entries_file = next(p for p in sorted((bundle / "tile" / "entries").rglob("*"))
                        if p.is_file())
    original = entries_file.read_bytes()
    flipped = bytearray(original)
    flipped[10] ^= 0x01
    entries_file.write_bytes(bytes(flipped))
    tampered = verify(bundle, keys, tmp_path)
    assert tampered.returncode == 1 and "FAILED" in tampered.stderr
    entries_file.write_bytes(original)

    head = (bundle / "checkpoint").read_text()
    forged_signer = Signer(settings.audit_origin, Ed25519PrivateKey.generate())
    (bundle / "checkpoint").write_text(sign_note(parse_signed_note(head).text, [forged_signer]))
    forged = verify(bundle, keys, tmp_path)
    assert forged.returncode == 1 and "trusted key" in forged.stderr
