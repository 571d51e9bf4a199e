"""A randomised set of tamperings of exported bundles: each is detected, and an
untampered bundle never raises a false alarm."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.tlog.bundle import export_bundle, roots_at, sign_checkpoint, write_bundle
from gateway.tlog.canonical import canonicalize
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import leaf_hash
from gateway.tlog.note import Signer
from gateway.tlog.verify import VerificationError, verify_bundle

NAME = "dipgw.example/audit"
KEY = Signer(NAME, Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32))
OTHER = Signer(NAME, Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32))
TAMPERINGS = ["bit", "remove", "swap", "truncate-and-forge", "resign", "none"]


def entries(count: int) -> list[bytes]:
    return [canonicalize({"index": i, "action": "message.delivered", "n": i * 7})
            for i in range(count)]


def build(path: Path, log: list[bytes], sizes: list[int]) -> None:
    write_bundle(path, log, sizes, [KEY])


@settings(max_examples=80, deadline=None)
@given(
    size=st.integers(min_value=2, max_value=600),
    kind=st.sampled_from(TAMPERINGS),
    data=st.data(),
)
def test_every_tampering_is_detected_and_nothing_else_is(
    size: int, kind: str, data: st.DataObject
) -> None:
    log = entries(size)
    checkpoints = sorted({max(1, size // 3), size})
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "bundle"
        if kind == "none":
            build(path, log, checkpoints)
            assert verify_bundle(path, [KEY.verifier_key()]).size == size
            return
        if kind == "bit":
            index = data.draw(st.integers(0, size - 1))
            bit = data.draw(st.integers(0, len(log[index]) * 8 - 1))
            changed = bytearray(log[index])
            changed[bit // 8] ^= 1 << (bit % 8)
            _export_with_genuine_checkpoints(path, log, [*log[:index], bytes(changed),
                                                         *log[index + 1:]], checkpoints)
        elif kind == "remove":
            # The entry is dropped; an earlier entry repeated at the end keeps the count,
            # as an attacker hiding a removal would.
            index = data.draw(st.integers(0, size - 1))
            filler = log[index - 1] if index > 0 else log[1]
            _export_with_genuine_checkpoints(
                path, log, [*log[:index], *log[index + 1:], filler], checkpoints
            )
        elif kind == "swap":
            i = data.draw(st.integers(0, size - 2))
            j = data.draw(st.integers(i + 1, size - 1))
            swapped = list(log)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            _export_with_genuine_checkpoints(path, log, swapped, checkpoints)
        elif kind == "truncate-and-forge":
            cut = checkpoints[0]
            forged_log = log[:cut] + entries(size + 5)[cut + 1: size + 1]
            genuine_old = sign_checkpoint(
                Checkpoint(NAME, cut, roots_at([cut], [leaf_hash(e) for e in log])[cut]), [KEY]
            )
            forged_new = sign_checkpoint(
                Checkpoint(NAME, len(forged_log),
                           roots_at([len(forged_log)],
                                    [leaf_hash(e) for e in forged_log])[len(forged_log)]),
                [OTHER],
            )
            export_bundle(path, forged_log, [genuine_old, forged_new])
        else:
            write_bundle(path, log, checkpoints, [OTHER])
        try:
            verify_bundle(path, [KEY.verifier_key()])
        except VerificationError:
            return
        raise AssertionError(f"tampering {kind!r} was not detected")


def _export_with_genuine_checkpoints(
    path: Path, genuine: list[bytes], offered: list[bytes], sizes: list[int]
) -> None:
    """Write ``offered`` entries beside checkpoints genuinely signed over ``genuine``.

    The exporter refuses mismatched checkpoints, so the bundle is written from the
    offered entries and the genuine checkpoints are put in place afterwards.
    """
    hashes = [leaf_hash(e) for e in genuine]
    roots = roots_at(sizes, hashes)
    notes = [sign_checkpoint(Checkpoint(NAME, s, roots[s]), [KEY]) for s in sizes]
    write_bundle(path, offered, sizes, [KEY])
    for size, note in zip(sizes, notes, strict=True):
        target = path / "checkpoint" if size == sizes[-1] else path / "checkpoints" / str(size)
        target.write_text(note)
