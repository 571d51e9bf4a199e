"""Receipts (``gateway.tlog.receipt``) verified offline: a genuine one passes, in its own
checkpoint and carried to a later one; every tampered member fails naming itself; the
parser refuses any input with ``MalformedReceipt`` and nothing else."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli import main
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.canonical import canonicalize
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.errors import TlogError
from gateway.tlog.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from gateway.tlog.note import Signer, parse_verifier_key
from gateway.tlog.receipt import (
    AuditReceipt,
    Inclusion,
    MalformedReceipt,
    ReceiptError,
    parse_receipt,
    verify_in_later_checkpoint,
    verify_receipt,
)

ORIGIN = "dipgw.test/audit"
SIGNER = Signer(ORIGIN, Ed25519PrivateKey.generate())
OTHER = Signer(ORIGIN, Ed25519PrivateKey.generate())
TRUSTED = [parse_verifier_key(SIGNER.verifier_key())]
ENTRIES = [canonicalize({"index": i, "action": "message.accepted", "message_id": f"m-{i}"})
           for i in range(13)]
LEAVES = [leaf_hash(e) for e in ENTRIES]
INDEX, SIZE, LATER = 5, 9, 13


def _note(size: int, signer: Signer = SIGNER, leaves: list[bytes] = LEAVES) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root(leaves[:size])), [signer])


def genuine(index: int = INDEX, size: int = SIZE) -> AuditReceipt:
    return AuditReceipt(
        origin=ORIGIN, index=index, entry_hash=LEAVES[index], entry=ENTRIES[index],
        inclusion=Inclusion(size, tuple(inclusion_proof(index, size, LEAVES)), _note(size)),
    )


def test_a_genuine_receipt_verifies_and_round_trips_as_json() -> None:
    receipt = genuine()
    verified = verify_receipt(receipt, TRUSTED)
    assert verified.entry == ENTRIES[INDEX] and verified.checkpoint.size == SIZE
    assert parse_receipt(receipt.to_text()) == receipt
    assert receipt.as_json()["format"] == "dipgw-receipt/1"


def test_a_receipt_verifies_in_a_later_checkpoint_through_a_consistency_proof() -> None:
    proof = consistency_proof(SIZE, LATER, LEAVES)
    verified = verify_in_later_checkpoint(genuine(), TRUSTED, _note(LATER), proof)
    assert verified.checkpoint.size == LATER
    # A later checkpoint of another tree (a fork) has no proof that leads to it.
    forked = [*LEAVES[:SIZE - 1], leaf_hash(b"rewritten"), *LEAVES[SIZE:]]
    with pytest.raises(ReceiptError, match="consistency proof"):
        verify_in_later_checkpoint(genuine(), TRUSTED, _note(LATER, leaves=forked), proof)
    with pytest.raises(ReceiptError, match="smaller"):
        verify_in_later_checkpoint(genuine(), TRUSTED, _note(SIZE - 1), [])


def _with_inclusion(receipt: AuditReceipt, **changes: Any) -> AuditReceipt:
    assert receipt.inclusion is not None
    return dataclasses.replace(receipt,
                               inclusion=dataclasses.replace(receipt.inclusion, **changes))


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 1]) + data[1:]


TAMPERED = {
    "entry": (lambda r: dataclasses.replace(r, entry=r.entry.replace(b"m-5", b"m-6")),
              "entry_hash"),
    "entry_hash": (lambda r: dataclasses.replace(r, entry_hash=_flip(r.entry_hash)),
                   "entry_hash"),
    "entry and hash": (lambda r: dataclasses.replace(
        r, entry=ENTRIES[6], entry_hash=LEAVES[6]), "index"),
    "index": (lambda r: dataclasses.replace(r, index=6), "index"),
    "proof": (lambda r: _with_inclusion(r, proof=(_flip(r.inclusion.proof[0]),
                                                  *r.inclusion.proof[1:])), "inclusion proof"),
    "short proof": (lambda r: _with_inclusion(r, proof=r.inclusion.proof[:-1]),
                    "inclusion proof"),
    "size": (lambda r: _with_inclusion(r, size=SIZE + 1), "inclusion"),
    "checkpoint signer": (lambda r: _with_inclusion(r, checkpoint=_note(SIZE, OTHER)),
                          "checkpoint"),
    "checkpoint root": (lambda r: _with_inclusion(
        r, checkpoint=_note(SIZE, leaves=[_flip(LEAVES[0]), *LEAVES[1:]])), "inclusion proof"),
    "checkpoint text": (lambda r: _with_inclusion(
        r, checkpoint=r.inclusion.checkpoint.replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n")),
        "checkpoint"),
    "origin": (lambda r: dataclasses.replace(r, origin="elsewhere/log"), "origin"),
}


@pytest.mark.parametrize("member", sorted(TAMPERED))
def test_a_tampered_receipt_fails_naming_what_failed(member: str) -> None:
    tamper, named = TAMPERED[member]
    with pytest.raises(ReceiptError) as failed:
        verify_receipt(tamper(genuine()), TRUSTED)
    assert str(failed.value).startswith(named), str(failed.value)


def test_a_pending_receipt_or_no_trusted_key_does_not_verify() -> None:
    pending = AuditReceipt(None, INDEX, LEAVES[INDEX])
    assert parse_receipt(pending.to_text()) == pending
    with pytest.raises(ReceiptError, match="pending"):
        verify_receipt(pending, TRUSTED)
    with pytest.raises(ReceiptError, match="no trusted"):
        verify_receipt(genuine(), [])


def _files(tmp_path: Path, receipt: AuditReceipt) -> tuple[str, str]:
    (tmp_path / "receipt.json").write_text(receipt.to_text())
    (tmp_path / "keys.txt").write_text(SIGNER.verifier_key() + "\n")
    return str(tmp_path / "receipt.json"), str(tmp_path / "keys.txt")


def test_dipgw_receipt_verify_exits_0_only_for_a_genuine_receipt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"DIPGW_DATA_DIR": str(tmp_path)}
    receipt_file, keys_file = _files(tmp_path, genuine())
    assert main(["receipt", "verify", receipt_file, "--public-key", keys_file], env) == 0
    assert f"entry {INDEX} is included" in capsys.readouterr().out

    (tmp_path / "newer").write_text(_note(LATER))
    (tmp_path / "proof").write_text(json.dumps({"proof": [
        base64.b64encode(h).decode() for h in consistency_proof(SIZE, LATER, LEAVES)]}))
    later = ["--checkpoint", str(tmp_path / "newer"), "--proof", str(tmp_path / "proof")]
    assert main(["receipt", "verify", receipt_file, "--public-key", keys_file, *later],
                env) == 0
    assert f"size {LATER}" in capsys.readouterr().out

    for member in ("entry", "proof", "checkpoint signer", "index"):
        receipt_file, keys_file = _files(tmp_path, TAMPERED[member][0](genuine()))
        assert main(["receipt", "verify", receipt_file, "--public-key", keys_file], env) == 1
        err = capsys.readouterr().err
        assert "receipt FAILED verification: " + TAMPERED[member][1] in err, err

    (tmp_path / "receipt.json").write_text("{not json")
    assert main(["receipt", "verify", receipt_file, "--public-key", keys_file], env) == 1
    assert "malformed receipt" in capsys.readouterr().err


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _near_receipts() -> st.SearchStrategy[dict[str, Any]]:
    """A genuine receipt's JSON with members replaced, removed or added at random."""
    base = genuine().as_json()
    members = st.sampled_from([*base, *base["inclusion"], "extra"])
    return st.lists(st.tuples(members, _JSON | st.sampled_from(list(base.values()))),
                    max_size=4).map(lambda changes: _apply(base, changes))


def _apply(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    document = json.loads(json.dumps(base))
    for key, value in changes:
        target = document["inclusion"] if key in base["inclusion"] and isinstance(
            document.get("inclusion"), dict) else document
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return document


@given(st.binary(max_size=300) | st.text(max_size=300) | _JSON.map(json.dumps))
def test_the_parser_refuses_any_input_with_malformed_receipt_only(data: Any) -> None:
    with contextlib.suppress(MalformedReceipt):
        parse_receipt(data)


@given(_near_receipts())
def test_a_parsed_receipt_round_trips_and_verifies_or_fails_with_a_tlog_error(
    document: dict[str, Any],
) -> None:
    try:
        receipt = parse_receipt(json.dumps(document))
    except MalformedReceipt:
        return
    assert parse_receipt(receipt.to_text()) == receipt
    try:
        verify_receipt(receipt, TRUSTED)
    except TlogError as failure:
        assert isinstance(failure, ReceiptError)
