"""C2SP tlog-witness §add-checkpoint: request parsing and every refusal of the decision."""

from __future__ import annotations

import base64
import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import EMPTY_ROOT, consistency_proof, leaf_hash, root
from gateway.tlog.note import Signer
from gateway.tlog.witness import (
    MAX_PROOF_LINES,
    AddCheckpoint,
    InconsistentCheckpoint,
    LatestCheckpoint,
    MalformedAddCheckpoint,
    SizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
    WitnessedLogs,
    decide,
    parse_add_checkpoint,
    parse_size_body,
)

ORIGIN = "dipgw.example/audit"
LOG = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
LOGS = WitnessedLogs.from_text(f"# the gateway\n{LOG.verifier_key()}\n\n")


def leaves(tag: str, n: int) -> list[bytes]:
    return [leaf_hash(f"{tag}-{i}".encode()) for i in range(n)]


def signed(hashes: list[bytes], signer: Signer = LOG, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, len(hashes), root(hashes)), [signer])


def request(
    old: list[bytes], new: list[bytes], signer: Signer = LOG, origin: str = ORIGIN
) -> AddCheckpoint:
    proof = consistency_proof(len(old), len(new), new) if old else []
    return AddCheckpoint(len(old), tuple(proof), signed(new, signer, origin))


def state(hashes: list[bytes]) -> LatestCheckpoint:
    return LatestCheckpoint(ORIGIN, len(hashes), root(hashes), signed(hashes))


def test_first_checkpoint_is_cosigned_on_first_use() -> None:
    history = leaves("a", 5)
    outcome = decide(request([], history), LOGS, None)
    assert outcome.latest.size == 5 and outcome.latest.root_hash == root(history)


def test_a_consistent_extension_is_cosigned() -> None:
    history = leaves("a", 20)
    outcome = decide(request(history[:7], history), LOGS, state(history[:7]))
    assert outcome.latest.size == 20


def test_resubmitting_the_same_checkpoint_is_cosigned_again() -> None:
    history = leaves("a", 7)
    again = AddCheckpoint(7, (), signed(history))
    assert decide(again, LOGS, state(history)).latest.size == 7


def test_a_split_view_is_refused() -> None:
    """Two histories under one origin and key: the second cannot be proven consistent."""
    honest, forked = leaves("a", 10), leaves("a", 6) + leaves("b", 4)
    seen = decide(request([], honest), LOGS, None).latest
    fork = AddCheckpoint(10, (), signed(forked))
    with pytest.raises(InconsistentCheckpoint):
        decide(fork, LOGS, seen)
    # An extension of the fork with a proof made from the fork's own leaves fails too.
    grown = forked + leaves("b2", 5)
    bad = AddCheckpoint(10, tuple(consistency_proof(10, 15, grown)), signed(grown))
    with pytest.raises(InconsistentCheckpoint):
        decide(bad, LOGS, seen)


def test_a_stale_old_size_gets_the_latest_size() -> None:
    history = leaves("a", 12)
    with pytest.raises(SizeConflict) as conflict:
        decide(request(history[:3], history), LOGS, state(history[:8]))
    assert conflict.value.latest_size == 8


def test_a_rollback_is_a_conflict() -> None:
    history = leaves("a", 12)
    with pytest.raises(SizeConflict):
        decide(AddCheckpoint(0, (), signed(history[:4])), LOGS, state(history))


def test_old_size_above_the_checkpoint_is_malformed() -> None:
    history = leaves("a", 4)
    with pytest.raises(MalformedAddCheckpoint, match="exceeds"):
        decide(AddCheckpoint(5, (), signed(history)), LOGS, state(leaves("a", 5)))


def test_unknown_origin_is_not_found() -> None:
    other = Signer("other.example/log", Ed25519PrivateKey.from_private_bytes(b"\x06" * 32))
    with pytest.raises(UnknownLog):
        decide(request([], leaves("a", 2), signer=other, origin=other.name), LOGS, None)


def test_a_key_the_witness_does_not_trust_is_forbidden() -> None:
    impostor = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    with pytest.raises(UntrustedCheckpoint, match="no signature by a trusted key"):
        decide(request([], leaves("a", 2), signer=impostor), LOGS, None)


def test_a_forged_signature_by_the_trusted_key_is_forbidden() -> None:
    note = signed(leaves("a", 2))
    text, sig = note.split("\n\n")
    forged_text = text.replace("\n2\n", "\n3\n")
    with pytest.raises(UntrustedCheckpoint, match="invalid signature"):
        decide(AddCheckpoint(0, (), f"{forged_text}\n\n{sig}"), LOGS, None)


def test_a_bad_proof_is_unprocessable() -> None:
    history = leaves("a", 9)
    good = request(history[:5], history)
    bent = AddCheckpoint(5, (b"\x00" * 32, *good.proof[1:]), good.signed_checkpoint)
    with pytest.raises(InconsistentCheckpoint):
        decide(bent, LOGS, state(history[:5]))


def test_a_proof_from_size_zero_is_unprocessable() -> None:
    with pytest.raises(InconsistentCheckpoint):
        decide(AddCheckpoint(0, (b"\x00" * 32,), signed(leaves("a", 3))), LOGS, None)


def test_an_empty_checkpoint_needs_the_empty_root() -> None:
    wrong = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), [LOG])
    with pytest.raises(InconsistentCheckpoint, match="size 0"):
        decide(AddCheckpoint(0, (), wrong), LOGS, None)
    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), [LOG])
    assert decide(AddCheckpoint(0, (), empty), LOGS, None).latest.size == 0


def test_a_malformed_checkpoint_is_malformed() -> None:
    with pytest.raises(MalformedAddCheckpoint):
        decide(AddCheckpoint(0, (), "not a note\n"), LOGS, None)


def test_the_request_body_round_trips() -> None:
    history = leaves("a", 30)
    req = request(history[:11], history)
    body = req.to_body()
    assert body.startswith(b"old 11\n")
    assert parse_add_checkpoint(body) == req


@pytest.mark.parametrize("body", [
    b"",
    b"old 1\n",
    b"old 01\n\nx",
    b"old -1\n\nx",
    b"new 1\n\nx",
    b"old 1 \n\nx",
    b"old 18446744073709551616\n\nx",
    b"old 1\nnot base64!\n\nx",
    b"old 1\n" + base64.b64encode(b"\x00" * 31) + b"\n\nx",
    b"old 1\n" + (base64.b64encode(b"\x00" * 32) + b"\n") * (MAX_PROOF_LINES + 1) + b"\nx",
    b"\xff\xfe\n\n",
])
def test_malformed_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedAddCheckpoint, match="malformed"):
        parse_add_checkpoint(body)


@given(old=st.integers(0, 2**64 - 1),
       proof=st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_LINES),
       note=st.text(max_size=50))
def test_any_request_round_trips(old: int, proof: list[bytes], note: str) -> None:
    req = AddCheckpoint(old, tuple(proof), note)
    assert parse_add_checkpoint(req.to_body()) == req


@given(st.binary(max_size=300))
def test_the_parser_raises_only_its_own_error(body: bytes) -> None:
    with contextlib.suppress(MalformedAddCheckpoint):
        parse_add_checkpoint(body)


@given(st.integers(0, 2**64 - 1))
def test_size_bodies_round_trip(size: int) -> None:
    assert parse_size_body(f"{size}\n".encode()) == size


@pytest.mark.parametrize("body", [b"", b"12", b"012\n", b"1 2\n", b"\xff\n"])
def test_malformed_size_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedAddCheckpoint):
        parse_size_body(body)
