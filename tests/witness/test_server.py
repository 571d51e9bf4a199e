"""``dipgw witness serve`` over real HTTP: C2SP tlog-witness add-checkpoint, every refusal,
a split view caught, and the state's compare-and-swap under concurrent requests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import cli
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.cosignature import (
    parse_cosignature_lines,
    parse_cosigner_key,
    verified_cosignatures,
)
from gateway.tlog.merkle import consistency_proof, leaf_hash, root
from gateway.tlog.note import Signer, parse_signed_note, parse_verifier_key, verify_note
from gateway.tlog.witness import AddCheckpoint, LatestCheckpoint
from gateway.witness.command import build
from gateway.witness.state import WitnessState

ORIGIN = "dipgw.example/audit"
LOG = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
NAME = "witness.example/w1"


def leaves(tag: str, n: int) -> list[bytes]:
    return [leaf_hash(f"{tag}-{i}".encode()) for i in range(n)]


def body(old: list[bytes], new: list[bytes], signer: Signer = LOG) -> bytes:
    proof = consistency_proof(len(old), len(new), new) if old else []
    note = sign_checkpoint(Checkpoint(signer.name, len(new), root(new)), [signer])
    return AddCheckpoint(len(old), tuple(proof), note).to_body()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key = tmp_path / "witness.key"
    assert cli.main(["witness", "keygen", "--out", str(key), "--name", NAME]) == 0
    logs = tmp_path / "logs.txt"
    logs.write_text(f"# the gateway\n{LOG.verifier_key()}\n", encoding="utf-8")
    return {"key": key, "logs": logs, "state": tmp_path / "state.sqlite"}


@pytest.fixture
async def witness(aiohttp_client: Any, files: dict[str, Path]) -> TestClient[Any, Any]:
    app = build(files["key"], NAME, files["logs"], files["state"])
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def add(client: TestClient[Any, Any], data: bytes) -> tuple[int, str, str]:
    response = await client.post("/add-checkpoint", data=data)
    return response.status, response.headers.get("Content-Type", ""), await response.text()


def test_keygen_makes_a_private_file_and_prints_a_cosigner_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    key = tmp_path / "w.key"
    assert cli.main(["witness", "keygen", "--out", str(key), "--name", NAME]) == 0
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert parse_cosigner_key(capsys.readouterr().out.strip()).name == NAME
    assert cli.main(["witness", "keygen", "--out", str(key), "--name", NAME]) != 0


def test_keygen_refuses_a_name_with_a_space(tmp_path: Path) -> None:
    key = tmp_path / "w.key"
    assert cli.main(["witness", "keygen", "--out", str(key), "--name", "a b"]) != 0
    assert not key.exists()


async def test_health_answers_the_verifier_key(witness: TestClient[Any, Any]) -> None:
    response = await witness.get("/")
    assert response.status == 200
    assert parse_cosigner_key((await response.text()).strip()).name == NAME


async def test_cosigns_and_advances(witness: TestClient[Any, Any]) -> None:
    vkey = parse_cosigner_key((await (await witness.get("/")).text()).strip())
    history = leaves("a", 40)
    status, _, text = await add(witness, body([], history[:9]))
    assert status == 200
    (line,) = parse_cosignature_lines(text)
    assert vkey.verify(Checkpoint(ORIGIN, 9, root(history[:9])).to_text(), line)
    status, _, _ = await add(witness, body(history[:9], history))
    assert status == 200


async def test_a_split_view_is_caught(witness: TestClient[Any, Any]) -> None:
    """A test double of a dishonest operator: one origin, one key, two histories."""
    auditor_view = leaves("entries", 12)
    agency_view = leaves("entries", 8) + leaves("rewritten", 4)
    assert (await add(witness, body([], auditor_view)))[0] == 200
    # Same size, other root: 422.
    fork = sign_checkpoint(Checkpoint(ORIGIN, 12, root(agency_view)), [LOG])
    status, _, reason = await add(witness, AddCheckpoint(12, (), fork).to_body())
    assert status == 422, reason
    # Grown from the fork, with a proof true of the fork alone: 422.
    grown = agency_view + leaves("more", 5)
    assert (await add(witness, body(agency_view, grown)))[0] == 422
    # Pretending the witness saw nothing yet: 409 with the size it holds.
    status, content_type, size = await add(witness, body([], grown))
    assert (status, content_type, size) == (409, "text/x.tlog.size", "12\n")
    # The honest history still extends.
    honest = auditor_view + leaves("more", 5)
    assert (await add(witness, body(auditor_view, honest)))[0] == 200


async def test_refusals_follow_the_spec(witness: TestClient[Any, Any]) -> None:
    history = leaves("a", 6)
    other = Signer("other.example/log", Ed25519PrivateKey.from_private_bytes(b"\x06" * 32))
    impostor = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    assert (await add(witness, b"old 1\n"))[0] == 400
    assert (await add(witness, b"old 9\n\n" + body([], history).split(b"\n\n", 1)[1]))[0] == 400
    assert (await add(witness, body([], history, other)))[0] == 404
    assert (await add(witness, body([], history, impostor)))[0] == 403
    assert (await add(witness, body(history[:2], history)))[0] == 409
    bad_proof = AddCheckpoint(
        0, (b"\x00" * 32,), sign_checkpoint(Checkpoint(ORIGIN, 6, root(history)), [LOG]))
    assert (await add(witness, bad_proof.to_body()))[0] == 422


async def test_get_is_not_add_checkpoint(witness: TestClient[Any, Any]) -> None:
    assert (await witness.get("/add-checkpoint")).status == 405


async def test_concurrent_requests_advance_the_state_once(
    witness: TestClient[Any, Any], files: dict[str, Path],
) -> None:
    history = leaves("a", 50)
    assert (await add(witness, body([], history[:10])))[0] == 200
    results = await asyncio.gather(*(
        add(witness, body(history[:10], history[:size])) for size in range(20, 50, 3)))
    assert sorted(status for status, _, _ in results).count(200) == 1
    assert {status for status, _, _ in results} <= {200, 409}
    latest = await WitnessState(files["state"]).latest(ORIGIN)
    assert latest is not None
    winner = next(i for i, r in enumerate(results) if r[0] == 200)
    assert latest.size == range(20, 50, 3)[winner]


async def test_compare_and_swap_refuses_a_stale_expectation(tmp_path: Path) -> None:
    state = WitnessState(tmp_path / "s.sqlite")
    first = LatestCheckpoint(ORIGIN, 1, b"\x01" * 32, "a")
    second = LatestCheckpoint(ORIGIN, 2, b"\x02" * 32, "b")
    assert await state.compare_and_swap(None, first)
    assert not await state.compare_and_swap(None, second)
    assert await state.compare_and_swap(first, second)
    assert not await state.compare_and_swap(first, second)
    huge = LatestCheckpoint(ORIGIN, 2**64 - 1, b"\x03" * 32, "c")
    assert await state.compare_and_swap(second, huge)
    assert await state.latest(ORIGIN) == huge


def test_an_empty_logs_file_is_refused(files: dict[str, Path]) -> None:
    files["logs"].write_text("# nothing\n", encoding="utf-8")
    code = cli.main(["witness", "serve", "--key", str(files["key"]), "--name", NAME,
                     "--logs", str(files["logs"]), "--state", str(files["state"])])
    assert code != 0


def test_a_readable_key_file_is_refused(files: dict[str, Path]) -> None:
    files["key"].chmod(0o644)
    code = cli.main(["witness", "serve", "--key", str(files["key"]), "--name", NAME,
                     "--logs", str(files["logs"]), "--state", str(files["state"])])
    assert code != 0


async def test_monitors_read_the_latest_cosigned_checkpoint(
    witness: TestClient[Any, Any],
) -> None:
    origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert (await witness.get(f"/{origin_hash}/checkpoint")).status == 404
    history = leaves("a", 5)
    assert (await add(witness, body([], history)))[0] == 200
    response = await witness.get(f"/{origin_hash}/checkpoint")
    assert response.status == 200
    note = parse_signed_note(await response.text())
    vkey = parse_cosigner_key((await (await witness.get("/")).text()).strip())
    assert verified_cosignatures(note, [vkey]) == [vkey]
    assert verify_note(note, [parse_verifier_key(LOG.verifier_key())]) == [ORIGIN]
    assert (await witness.get(f"/{'0' * 64}/checkpoint")).status == 404
