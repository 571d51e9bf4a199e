"""``verify_witness_quorum``: the newest checkpoint of a bundle must carry valid
cosignatures by enough distinct trusted witnesses; every way to fall short is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tlog.bundle import write_bundle
from gateway.tlog.cosignature import (
    Cosignature,
    Cosigner,
    parse_cosignature_line,
    with_cosignatures,
)
from gateway.tlog.errors import VerificationError
from gateway.tlog.note import Signer, parse_signed_note
from gateway.tlog.verify import verify_bundle, verify_witness_quorum

LOG = Signer("dipgw.example/audit", Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
W1 = Cosigner("w1.example", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
W2 = Cosigner("w2.example", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
W2_OTHER_KEY = Cosigner("w2.example", Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))


def bundle(tmp_path: Path, *cosigners: Cosigner) -> Path:
    path = tmp_path / "bundle"
    write_bundle(path, [f"entry {i}".encode() for i in range(9)], [4, 9], [LOG])
    head = (path / "checkpoint").read_text(encoding="utf-8")
    text = parse_signed_note(head).text
    cosigned = with_cosignatures(head, [c.cosign(text, 100 + i) for i, c in enumerate(cosigners)])
    (path / "checkpoint").write_text(cosigned, encoding="utf-8")
    return path


def test_a_quorum_of_two_is_met(tmp_path: Path) -> None:
    path = bundle(tmp_path, W1, W2)
    verify_bundle(path, [LOG.verifier_key()])
    assert verify_witness_quorum(path, [W1.verifier_key(), W2.verifier_key()], 2) == (
        "w1.example", "w2.example")


def test_too_few_cosignatures_are_refused(tmp_path: Path) -> None:
    path = bundle(tmp_path, W1)
    with pytest.raises(VerificationError, match=r"cosigned by 1 .* quorum of 2"):
        verify_witness_quorum(path, [W1.verifier_key(), W2.verifier_key()], 2)


def test_a_quorum_above_the_keys_given_is_refused(tmp_path: Path) -> None:
    path = bundle(tmp_path, W1, W2)
    with pytest.raises(VerificationError, match="only 2 distinct"):
        verify_witness_quorum(path, [W1.verifier_key(), W2.verifier_key()], 3)


def test_one_witness_with_two_keys_counts_once(tmp_path: Path) -> None:
    path = bundle(tmp_path, W2, W2_OTHER_KEY)
    with pytest.raises(VerificationError, match="only 1 distinct"):
        verify_witness_quorum(path, [W2.verifier_key(), W2_OTHER_KEY.verifier_key()], 2)


@pytest.mark.parametrize("quorum", [0, -1])
def test_a_quorum_below_one_is_refused(tmp_path: Path, quorum: int) -> None:
    with pytest.raises(VerificationError, match="at least 1"):
        verify_witness_quorum(bundle(tmp_path, W1), [W1.verifier_key()], quorum)


def test_a_forged_line_by_a_trusted_witness_fails(tmp_path: Path) -> None:
    path = bundle(tmp_path, W1, W2)
    head = (path / "checkpoint").read_text(encoding="utf-8")
    line = next(x for x in head.splitlines() if x.startswith("— w1.example "))
    cosignature = parse_cosignature_line(line)
    forged = Cosignature(cosignature.name, cosignature.key_id, cosignature.timestamp,
                         bytes([cosignature.signature[0] ^ 1]) + cosignature.signature[1:])
    (path / "checkpoint").write_text(head.replace(line, forged.line()[:-1]), encoding="utf-8")
    with pytest.raises(VerificationError, match="invalid cosignature by trusted witness"):
        verify_witness_quorum(path, [W1.verifier_key(), W2.verifier_key()], 1)


def test_a_log_key_is_not_a_witness_key(tmp_path: Path) -> None:
    with pytest.raises(VerificationError, match="witness key #0"):
        verify_witness_quorum(bundle(tmp_path, W1), [LOG.verifier_key()], 1)
