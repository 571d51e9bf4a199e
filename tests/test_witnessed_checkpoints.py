"""The gateway with witnesses: two real ``dipgw witness serve`` apps cosign its checkpoints,
``dipgw audit verify --quorum`` holds an export to them, and a witness that is down never
stops messages being accepted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.config import Settings
from gateway.domain.model import Role
from gateway.http.services import SERVICES
from gateway.services import audit_proofs
from gateway.services.checkpoints import AuditKeys
from gateway.tlog.cosignature import parse_cosigner_key, verified_cosignatures
from gateway.tlog.note import parse_signed_note
from gateway.tlog.witness import AddCheckpoint
from gateway.witness.command import build, keygen
from tests.backends import make_settings
from tests.conftest import AgencyFactory, bearer, example_files, load
from tests.test_audit_log import _export, verify

VALID = [load(p) for p in example_files("valid*.json")]
ORIGIN = "dipgw.test/audit"


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def witness_servers(tmp_path: Path) -> AsyncIterator[list[tuple[str, str]]]:
    """Two witness servers for the gateway's log key (made here, in development as the
    gateway would), as (verifier key, URL)."""
    log_key = AuditKeys(tmp_path / "audit-keys", ORIGIN, create=True).current.verifier_key()
    logs = tmp_path / "witnessed-logs.txt"
    logs.write_text(log_key + "\n", encoding="utf-8")
    servers: list[TestServer] = []
    found: list[tuple[str, str]] = []
    try:
        for n in (1, 2):
            key = tmp_path / f"w{n}.key"
            vkey = keygen(key, f"witness{n}.test/w")
            server = TestServer(build(key, f"witness{n}.test/w", logs, tmp_path / f"w{n}.sqlite"))
            await server.start_server()
            servers.append(server)
            found.append((vkey, str(server.make_url("")).rstrip("/")))
        yield found
    finally:
        for server in servers:
            await server.close()


@pytest.fixture
async def witnesses(tmp_path: Path) -> AsyncIterator[list[tuple[str, str]]]:
    async with witness_servers(tmp_path) as found:
        yield found


async def add_checkpoint(url: str, old: int, proof: Sequence[bytes], note: str) -> int:
    """POST add-checkpoint to a witness directly, as a log would; the status."""
    async with aiohttp.ClientSession() as session, session.post(
        f"{url}/add-checkpoint", data=AddCheckpoint(old, tuple(proof), note).to_body(),
    ) as response:
        return response.status


@pytest.fixture
def settings(tmp_path: Path, witnesses: list[tuple[str, str]]) -> Settings:
    return witnessed_settings(tmp_path, witnesses)


def witnessed_settings(tmp_path: Path, witnesses: list[tuple[str, str]]) -> Settings:
    """A gateway asking ``witnesses`` and a third witness that is never up."""
    down = ("witness3.test/down", f"http://127.0.0.1:{_unused_port()}")
    down_key = keygen(tmp_path / "w3.key", down[0])
    listed = tmp_path / "witnesses.txt"
    listed.write_text(
        "# witnesses of the audit log\n"
        + "".join(f"{vkey} {url}\n" for vkey, url in witnesses)
        + f"{down_key} {down[1]}\n", encoding="utf-8")
    return make_settings(
        data_dir=tmp_path, relay_interval_s=0.05, audit_origin=ORIGIN,
        audit_keys_dir_override=tmp_path / "audit-keys", witnesses_file=listed,
        witness_timeout_s=2.0, checkpoint_interval_s=0.5,
    )


def witness_keys(witnesses: list[tuple[str, str]], tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("".join(f"{vkey}\n" for vkey, _ in witnesses), encoding="utf-8")
    return path


async def test_checkpoints_are_cosigned_by_both_witnesses_and_the_quorum_is_held(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    witnesses: list[tuple[str, str]], tmp_path: Path,
) -> None:
    services = client.server.app[SERVICES]
    for document in VALID[:4]:
        answer = await agency(document["from"]).send(document)
        assert answer.status == 202
    signed = await services.checkpointer.integrate()
    assert signed is not None
    await services.witnessing.settle()

    response = await client.get("/v1/audit/checkpoint",
                                headers=bearer(settings, "DIP-ASSURE", Role.AUDITOR))
    note = parse_signed_note(await response.text())
    trusted = [parse_cosigner_key(vkey) for vkey, _ in witnesses]
    assert {w.name for w in verified_cosignatures(note, trusted)} == {
        "witness1.test/w", "witness2.test/w"}

    def counted(witness: str, outcome: str) -> float:
        value = services.metrics.registry.get_sample_value(
            "dipgw_witness_requests_total", {"witness": witness, "outcome": outcome})
        return value or 0.0

    assert counted("witness3.test/down", "unreachable") > 0
    assert counted("witness1.test/w", "cosigned") > 0

    bundle = await _export(client, settings, tmp_path / "export")
    keys = (await (await client.get(
        "/v1/audit/keys", headers=bearer(settings, "CJIT-SFK"))).text()).split()
    both = witness_keys(witnesses, tmp_path, "both.txt")
    ok = verify(bundle, keys, tmp_path, "--witness", str(both), "--quorum", "2")
    assert ok.returncode == 0, ok.stderr
    assert "cosigned by 2 trusted witness(es)" in ok.stdout

    three = verify(bundle, keys, tmp_path, "--witness", str(both), "--quorum", "3")
    assert three.returncode != 0 and "quorum of 3" in three.stderr

    head = (bundle / "checkpoint").read_text(encoding="utf-8")
    one_line = "".join(x + "\n" for x in head.splitlines() if not x.startswith("— witness2"))
    (bundle / "checkpoint").write_text(one_line, encoding="utf-8")
    one = verify(bundle, keys, tmp_path, "--witness", str(both), "--quorum", "2")
    assert one.returncode == 1 and "cosigned by 1 of the trusted witnesses" in one.stderr

    forged = head.replace("— witness2.test/w ", "— witness2.test/w A", 1)
    (bundle / "checkpoint").write_text(forged, encoding="utf-8")
    bad = verify(bundle, keys, tmp_path, "--witness", str(both), "--quorum", "1")
    assert bad.returncode == 1 and "FAILED" in bad.stderr


async def test_a_witness_that_is_down_does_not_stop_messages(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
) -> None:
    """witness3 is never up: every message is still accepted at once."""
    services = client.server.app[SERVICES]
    for document in VALID[:3]:
        answer = await asyncio.wait_for(agency(document["from"]).send(document), timeout=1.5)
        assert answer.status == 202
        await services.checkpointer.integrate()


async def test_witnesses_follow_the_log_as_it_grows(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    witnesses: list[tuple[str, str]],
) -> None:
    """The second request to each witness carries old = the size it cosigned before and a
    consistency proof from it; both witnesses accept, so both cosign the newer size."""
    services = client.server.app[SERVICES]
    await agency(VALID[0]["from"]).send(VALID[0])
    first = await services.checkpointer.integrate()
    await services.witnessing.settle()
    await agency(VALID[1]["from"]).send(VALID[1])
    second = await services.checkpointer.integrate()
    await services.witnessing.settle()
    assert first is not None and second is not None and second[0] > first[0]
    stored = await services.audit.cosignatures(second[0])
    assert len(stored[second[0]]) == 2
    for vkey, _ in witnesses:
        assert await services.audit.cosigned_size(vkey) >= second[0]


async def test_a_witness_ahead_of_what_the_gateway_kept_is_caught_up_after_a_409(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    witnesses: list[tuple[str, str]],
) -> None:
    """The gateway lost track of a witness (it cosigned a size the gateway kept no line
    for): the 409 names that size, and the request is made again from it, with the
    consistency proof from there."""
    services = client.server.app[SERVICES]
    w1_key, w1_url = witnesses[0]
    await agency(VALID[0]["from"]).send(VALID[0])
    first = await services.checkpointer.integrate()
    await services.witnessing.settle()
    assert first is not None and await services.audit.cosigned_size(w1_key) == first[0]

    await services.witnessing.stop()
    await agency(VALID[1]["from"]).send(VALID[1])
    second = await services.checkpointer.integrate()
    assert second is not None
    proof = await audit_proofs.consistency(services.audit, first[0], second[0])
    assert await add_checkpoint(w1_url, first[0], proof, second[1]) == 200
    await agency(VALID[2]["from"]).send(VALID[2])
    third = await services.checkpointer.integrate()
    assert third is not None

    services.witnessing.start()
    await services.witnessing.settle()
    assert await services.audit.cosigned_size(w1_key) == third[0]
    assert len((await services.audit.cosignatures(third[0]))[third[0]]) == 2


async def test_a_receipt_carries_the_witnesses_cosignatures_and_their_quorum_is_checked(
    client: TestClient[Any, Any], settings: Settings, agency: AgencyFactory,
    witnesses: list[tuple[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """An agency's receipt shows the checkpoint it is proved in was witnessed, offline."""
    from gateway.cli import main

    services = client.server.app[SERVICES]
    document = VALID[0]
    sender = agency(document["from"])
    await sender.send(document)
    await services.checkpointer.integrate()
    await services.witnessing.settle()
    (tmp_path / "receipt.json").write_text(
        json.dumps(await sender.receipt(document["message_id"])), encoding="utf-8")
    (tmp_path / "keys.txt").write_text(await (await client.get(
        "/v1/audit/keys", headers=bearer(settings, "CJIT-SFK"))).text(), encoding="utf-8")
    both = witness_keys(witnesses, tmp_path, "both.txt")
    verify_receipt = ["receipt", "verify", str(tmp_path / "receipt.json"),
                      "--public-key", str(tmp_path / "keys.txt"), "--witness", str(both)]
    assert main([*verify_receipt, "--quorum", "2"], {}) == 0
    assert "cosigned by 2 trusted witness(es), quorum 2" in capsys.readouterr().out
    assert main([*verify_receipt, "--quorum", "3"], {}) == 1
    assert "quorum of 3" in capsys.readouterr().err
