"""Offline bundle verification: untampered bundles pass, every tampering is pinpointed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tlog import merkle
from gateway.tlog.bundle import export_bundle, sign_checkpoint, write_bundle
from gateway.tlog.canonical import canonicalize
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.note import Signer
from gateway.tlog.tiles import entry_bundle, read_entry_bundle
from gateway.tlog.verify import VerificationError, verify_bundle, verify_inclusion_of

NAME = "dipgw.example/audit"
SIZES = [100, 300, 700, 1000]
OLD = Signer(NAME, Ed25519PrivateKey.from_private_bytes(bytes([1]) * 32))
NEW = Signer(NAME, Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32))
EVIL = Signer(NAME, Ed25519PrivateKey.from_private_bytes(bytes([3]) * 32))
KEYS = [OLD.verifier_key(), NEW.verifier_key()]
ENTRIES = [
    canonicalize({"seq": i, "event": "message.delivered", "agency": f"A{i % 7}", "ok": True})
    for i in range(1000)
]
SIGNERS = {100: [OLD], 300: [OLD], 700: [OLD], 1000: [OLD, NEW]}  # rotation at 1000


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle"
    write_bundle(path, ENTRIES, SIZES, SIGNERS, consistency_proofs=True)
    return path


def notes(path: Path) -> list[str]:
    older = [(path / "checkpoints" / str(s)).read_text() for s in SIZES[:-1]]
    return [*older, (path / "checkpoint").read_text()]


def bundle_file(index: int) -> str:
    tile = index // 256
    return f"tile/entries/00{tile}" + (".p/232" if tile == 3 else "")


def rewrite_entries(path: Path, tile_file: str, change: object) -> None:
    file = path / tile_file
    entries = read_entry_bundle(file.read_bytes())
    assert callable(change)
    file.write_bytes(entry_bundle(change(entries)))


def test_untampered_bundle_verifies(bundle: Path) -> None:
    report = verify_bundle(bundle, KEYS)
    assert report.origin == NAME
    assert report.size == 1000
    assert report.root_hash == merkle.root([merkle.leaf_hash(e) for e in ENTRIES])
    assert [c.size for c in report.checkpoints] == SIZES
    assert [c.file for c in report.checkpoints] == [
        "checkpoints/100",
        "checkpoints/300",
        "checkpoints/700",
        "checkpoint",
    ]
    old_label = f"{NAME}+{OLD.key_id.hex()}"
    new_label = f"{NAME}+{NEW.key_id.hex()}"
    assert report.checkpoints[0].signers == (old_label,)
    assert report.checkpoints[-1].signers == (old_label, new_label)
    assert report.entries_checked == 1000
    assert report.entry_range == (0, 1000)
    assert report.consistency_proofs_checked == 3
    assert (bundle / "tile/0/003.p/232").is_file()
    assert (bundle / "tile/entries/001.p/44").is_file()  # partial bundle of checkpoint 300
    # Retired key alone still verifies every checkpoint: each carries an OLD signature.
    assert verify_bundle(bundle, [OLD.verifier_key()]).size == 1000


def test_new_key_alone_rejects_checkpoints_signed_before_rotation(bundle: Path) -> None:
    with pytest.raises(VerificationError, match=r"^checkpoints/100: no signature by a trusted"):
        verify_bundle(bundle, [NEW.verifier_key()])


def test_keys_in_the_bundle_are_never_trusted(bundle: Path) -> None:
    (bundle / "keys").write_text(EVIL.verifier_key() + "\n")
    cp = Checkpoint(NAME, 1000, _root(ENTRIES, 1000))
    (bundle / "checkpoint").write_text(sign_checkpoint(cp, [EVIL]))
    with pytest.raises(VerificationError, match=r"^checkpoint: no signature by a trusted key"):
        verify_bundle(bundle, KEYS)


@pytest.mark.parametrize("index", [0, 99, 255, 256, 517, 700, 999])
def test_flipped_bit_in_an_entry(bundle: Path, index: int) -> None:
    def flip(entries: list[bytes]) -> list[bytes]:
        e = bytearray(entries[index % 256])
        e[3] ^= 0x01
        entries[index % 256] = bytes(e)
        return entries

    rewrite_entries(bundle, bundle_file(index), flip)
    with pytest.raises(VerificationError, match=rf"^entry {index}: leaf hash [0-9a-f]{{64}}"):
        verify_bundle(bundle, KEYS)


@pytest.mark.parametrize("index", [5, 517, 999])
def test_flipped_bit_with_all_tiles_rebuilt(tmp_path: Path, bundle: Path, index: int) -> None:
    tampered = list(ENTRIES)
    tampered[index] = tampered[index].replace(b'"ok":true', b'"ok":trud')
    forged = tmp_path / "forged"
    forged_notes = [sign_checkpoint(Checkpoint(NAME, s, _root(tampered, s)), [EVIL]) for s in SIZES]
    export_bundle(forged, tampered, forged_notes, consistency_proofs=True)
    for rel in ["checkpoint", *(f"checkpoints/{s}" for s in SIZES[:-1])]:
        shutil.copy(bundle / rel, forged / rel)  # genuine signed checkpoints
    shutil.rmtree(forged / "proofs")
    first_bad = next(s for s in SIZES if s > index)
    previous = max([0, *(s for s in SIZES if s <= index)])
    with pytest.raises(
        VerificationError,
        match=rf"^checkpoint size {first_bad} \(.*\): root recomputed .* entries "
        rf"{previous}\.\.{first_bad - 1}$",
    ):
        verify_bundle(forged, KEYS)


def _root(entries: list[bytes], size: int) -> bytes:
    return merkle.root([merkle.leaf_hash(e) for e in entries[:size]])


def test_removed_entry(bundle: Path) -> None:
    rewrite_entries(bundle, "tile/entries/002", lambda es: es[:10] + es[11:])
    with pytest.raises(
        VerificationError,
        match=r"^tile/entries/002: holds 255 entries, expected 256 \(entries 512\.\.767\)",
    ):
        verify_bundle(bundle, KEYS)


def test_removed_entry_bundle_is_a_gap(bundle: Path) -> None:
    (bundle / "tile/entries/001").unlink()
    with pytest.raises(
        VerificationError, match=r"^entries 256\.\.511 missing: no entry bundle tile/entries/001"
    ):
        verify_bundle(bundle, KEYS)


def test_removed_entry_with_everything_rebuilt(tmp_path: Path, bundle: Path) -> None:
    shortened = ENTRIES[:400] + ENTRIES[401:] + [canonicalize({"seq": "padding"})]
    forged = tmp_path / "forged"
    fake = [sign_checkpoint(Checkpoint(NAME, s, _root(shortened, s)), [EVIL]) for s in SIZES]
    export_bundle(forged, shortened, fake)
    for rel in ["checkpoint", *(f"checkpoints/{s}" for s in SIZES[:-1])]:
        shutil.copy(bundle / rel, forged / rel)
    with pytest.raises(VerificationError, match=r"^checkpoint size 700 .* entries 300\.\.699$"):
        verify_bundle(forged, KEYS)


def test_two_entries_swapped(bundle: Path) -> None:
    def swap(entries: list[bytes]) -> list[bytes]:
        entries[3], entries[200] = entries[200], entries[3]
        return entries

    rewrite_entries(bundle, "tile/entries/001", swap)
    with pytest.raises(VerificationError, match=r"^entry 259: leaf hash"):
        verify_bundle(bundle, KEYS)


def test_truncated_log_with_forged_later_checkpoint(tmp_path: Path, bundle: Path) -> None:
    genuine = notes(bundle)
    appended = ENTRIES[:700] + [canonicalize({"seq": i, "forged": True}) for i in range(200)]
    forged_head = sign_checkpoint(Checkpoint(NAME, 900, _root(appended, 900)), [EVIL])
    forged = tmp_path / "forged"
    export_bundle(forged, appended, [*genuine[:3], forged_head])
    with pytest.raises(
        VerificationError, match=r"^checkpoint: no signature by a trusted key; signed by: "
    ):
        verify_bundle(forged, KEYS)
    # Offering only the truncated log with its old, genuine checkpoint is self-consistent;
    # the auditor pins the size they know the log reached.
    truncated = tmp_path / "truncated"
    export_bundle(truncated, ENTRIES[:700], genuine[:3])
    assert verify_bundle(truncated, KEYS).size == 700
    with pytest.raises(VerificationError, match=r"^checkpoint: size 700 is below the known"):
        verify_bundle(truncated, KEYS, min_size=1000)


def test_forged_signature_with_genuine_key_id(bundle: Path) -> None:
    text = (bundle / "checkpoint").read_text()
    body, _, _ = text.partition("\n\n")
    bad = EVIL.signature(body + "\n")
    from gateway.tlog.note import NoteSignature

    line = NoteSignature(NAME, OLD.key_id, bad.signature).line()
    (bundle / "checkpoint").write_text(body + "\n\n" + line)
    with pytest.raises(
        VerificationError, match=rf"^checkpoint: invalid signature by trusted key '{NAME}'"
    ):
        verify_bundle(bundle, KEYS)


def test_checkpoint_resigned_with_another_key_only(bundle: Path) -> None:
    cp = Checkpoint(NAME, 300, _root(ENTRIES, 300))
    (bundle / "checkpoints/300").write_text(sign_checkpoint(cp, [EVIL]))
    with pytest.raises(
        VerificationError,
        match=rf"^checkpoints/300: no signature by a trusted key; signed by: "
        rf"'{NAME}' \(ID {EVIL.key_id.hex()}\)$",
    ):
        verify_bundle(bundle, KEYS)


def test_stale_head_checkpoint(bundle: Path) -> None:
    head = (bundle / "checkpoint").read_text()
    (bundle / "checkpoint").write_text((bundle / "checkpoints/700").read_text())
    (bundle / "checkpoints/1000").write_text(head)
    with pytest.raises(VerificationError, match=r"^checkpoints/1000: size 1000 is newer"):
        verify_bundle(bundle, KEYS)


def test_misnamed_checkpoint_file(bundle: Path) -> None:
    (bundle / "checkpoints/300").rename(bundle / "checkpoints/301")
    with pytest.raises(VerificationError, match=r"^checkpoints/301: file name says size 301"):
        verify_bundle(bundle, KEYS)


def test_tampered_consistency_proof(bundle: Path) -> None:
    proof = bundle / "proofs/consistency/300-700"
    lines = proof.read_text().splitlines()
    lines[0] = "A" * 43 + "="
    proof.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        VerificationError, match=r"^proofs/consistency/300-700: consistency failed: expected"
    ):
        verify_bundle(bundle, KEYS)


def test_tampered_level0_and_level1_tiles(bundle: Path) -> None:
    tile = bundle / "tile/0/001"
    data = bytearray(tile.read_bytes())
    data[32 * 17] ^= 0x80
    tile.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"^entry 273: leaf hash .* in tile/0/001$"):
        verify_bundle(bundle, KEYS)
    tile.write_bytes(bytes(data[:-32]))
    with pytest.raises(VerificationError, match=r"^tile/0/001: holds 255 hashes, expected 256"):
        verify_bundle(bundle, KEYS)


def test_tampered_upper_tile(bundle: Path) -> None:
    tile = bundle / "tile/1/000.p/3"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1
    tile.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"^tile/1/000\.p/3: hash 1 is"):
        verify_bundle(bundle, KEYS)


def test_missing_tile_and_unexpected_files(bundle: Path) -> None:
    (bundle / "tile/1/000.p/3").unlink()
    with pytest.raises(VerificationError, match=r"^missing tile tile/1/000\.p/3$"):
        verify_bundle(bundle, KEYS)


@pytest.mark.parametrize("rel", ["tile/0/004", "tile/entries/003", "tile/0/001.bak", "tile/x"])
def test_files_beyond_the_tree_or_unparseable(bundle: Path, rel: str) -> None:
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_bytes(b"\x00" * 32)
    with pytest.raises(VerificationError, match=rf"^(unexpected file {rel}|{rel}: covers)"):
        verify_bundle(bundle, KEYS)


def test_range_export(tmp_path: Path) -> None:
    path = tmp_path / "range"
    write_bundle(path, ENTRIES, SIZES, SIGNERS, entry_range=(300, 600))
    assert not (path / "tile/entries/000").exists()
    assert not (path / "tile/entries/003.p/232").exists()
    report = verify_bundle(path, KEYS, entry_range=(300, 600))
    assert report.entries_checked == 512  # tiles 1 and 2, rounded out to whole tiles
    assert report.size == 1000
    with pytest.raises(VerificationError, match=r"^entries 0\.\.255 missing"):
        verify_bundle(path, KEYS)
    # A level-0 tile outside the range stands in for its entries; altering it breaks roots.
    for rel in ["tile/0/000", "tile/0/000.p/100"]:
        data = bytearray((path / rel).read_bytes())
        data[0] ^= 1
        (path / rel).write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"^checkpoint size 100 .* entries 0\.\.99$"):
        verify_bundle(path, KEYS, entry_range=(300, 600))


def test_range_export_entry_tampering(tmp_path: Path) -> None:
    path = tmp_path / "range"
    write_bundle(path, ENTRIES, SIZES, SIGNERS, entry_range=(300, 600))
    rewrite_entries(path, "tile/entries/002", lambda es: [es[0] + b" ", *es[1:]])
    with pytest.raises(VerificationError, match=r"^entry 512: leaf hash"):
        verify_bundle(path, KEYS, entry_range=(300, 600))


def test_verify_inclusion_of(bundle: Path) -> None:
    summary = verify_inclusion_of(bundle, KEYS, 517)
    assert summary.entry == ENTRIES[517]
    assert summary.tree_size == 1000
    assert summary.leaf_hash == merkle.leaf_hash(ENTRIES[517])
    merkle.verify_inclusion(517, 1000, summary.leaf_hash, list(summary.proof), summary.root_hash)
    with pytest.raises(VerificationError, match="not in the checkpoint"):
        verify_inclusion_of(bundle, KEYS, 1000)
    with pytest.raises(VerificationError, match="no signature by a trusted key"):
        verify_inclusion_of(bundle, [EVIL.verifier_key()], 3)


def test_bad_verifier_key_argument(bundle: Path) -> None:
    with pytest.raises(VerificationError, match=r"^verifier key #0: malformed"):
        verify_bundle(bundle, ["nonsense"])
    with pytest.raises(VerificationError, match="no verifier keys"):
        verify_bundle(bundle, [])


def test_exporter_refuses_mismatched_checkpoints(tmp_path: Path, bundle: Path) -> None:
    with pytest.raises(ValueError, match="does not match the entries"):
        export_bundle(tmp_path / "x", [*ENTRIES[:99], b"other", *ENTRIES[100:]], notes(bundle))
