"""C2SP tlog-cosignature v1 (Ed25519, type 0x04): the external vector, signing, parsing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.tlog.cosignature import (
    Cosignature,
    Cosigner,
    cosigned_message,
    cosigner_key_id,
    format_cosigner_key,
    parse_cosignature_line,
    parse_cosignature_lines,
    parse_cosigner_key,
    verified_cosignatures,
    with_cosignatures,
)
from gateway.tlog.errors import MalformedNote, NoteVerificationError
from gateway.tlog.note import Signer, parse_signed_note, parse_verifier_key

VECTORS = Path(__file__).parents[1] / "data" / "cosignature"
REMORA_TIMESTAMP = 1779573024
CHECKPOINT_TEXT = "example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"


def vector() -> tuple[str, str]:
    note = (VECTORS / "arche2025h1-cosigned.checkpoint").read_text(encoding="utf-8")
    vkey = (VECTORS / "remora.vkey").read_text(encoding="ascii").strip()
    return note, vkey


def cosigner(seed: bytes = bytes(range(32)), name: str = "witness.example/w1") -> Cosigner:
    return Cosigner(name, Ed25519PrivateKey.from_private_bytes(seed))


def test_the_public_witness_vector_verifies() -> None:
    note, vkey = vector()
    remora = parse_cosigner_key(vkey)
    assert verified_cosignatures(parse_signed_note(note), [remora]) == [remora]


def test_the_vector_is_reproduced_byte_for_byte() -> None:
    """Produce: the key string and the signature line re-encode to the published bytes."""
    note, vkey = vector()
    remora = parse_cosigner_key(vkey)
    assert format_cosigner_key(remora.name, remora.public_key) == vkey
    assert cosigner_key_id(remora.name, remora.public_key) == remora.key_id
    line = next(x for x in note.splitlines() if x.startswith("— remora.n621.de "))
    parsed = parse_cosignature_line(line)
    assert parsed.timestamp == REMORA_TIMESTAMP
    assert parsed.line() == line + "\n"


def test_the_vector_fails_when_the_checkpoint_changes() -> None:
    note, vkey = vector()
    altered = note.replace("1432088532", "1432088533", 1)
    with pytest.raises(NoteVerificationError):
        verified_cosignatures(parse_signed_note(altered), [parse_cosigner_key(vkey)])


def test_the_vector_fails_when_its_timestamp_changes() -> None:
    note, vkey = vector()
    line = next(x for x in note.splitlines() if x.startswith("— remora.n621.de "))
    c = parse_cosignature_line(line)
    moved = Cosignature(c.name, c.key_id, c.timestamp + 1, c.signature).line()[:-1]
    with pytest.raises(NoteVerificationError, match="remora"):
        verified_cosignatures(parse_signed_note(note.replace(line, moved)),
                              [parse_cosigner_key(vkey)])


def test_a_signed_note_key_is_not_a_cosigner_key() -> None:
    """A 0x01 key (signed-note) and a 0x04 key of the same bytes have different IDs."""
    _, vkey = vector()
    remora = parse_cosigner_key(vkey)
    log_style = Signer(remora.name, Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
    assert parse_verifier_key(log_style.verifier_key()).key_id != cosigner_key_id(
        log_style.name, log_style.public_key)
    with pytest.raises(MalformedNote, match="type 0x04"):
        parse_cosigner_key(log_style.verifier_key())


def test_signing_follows_the_spec_text() -> None:
    """Written from tlog-cosignature §"Ed25519 signed message", by hand."""
    seed = bytes(range(32))
    private = Ed25519PrivateKey.from_private_bytes(seed)
    made = cosigner(seed).cosign(CHECKPOINT_TEXT, 1679315147)
    message = b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT_TEXT.encode()
    assert cosigned_message(CHECKPOINT_TEXT, 1679315147) == message
    assert made.signature == private.sign(message)
    public = cosigner(seed).public_key
    key_id = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    raw = key_id + (1679315147).to_bytes(8, "big") + private.sign(message)
    assert made.line() == "— witness.example/w1 " + base64.b64encode(raw).decode() + "\n"


def test_a_cosigned_log_checkpoint_stays_a_valid_log_note() -> None:
    log = Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))
    signed = log.sign(CHECKPOINT_TEXT)
    w1, w2 = cosigner(b"\x01" * 32, "w1.example"), cosigner(b"\x02" * 32, "w2.example")
    cosigned = with_cosignatures(signed, [w1.cosign(CHECKPOINT_TEXT, 10),
                                          w2.cosign(CHECKPOINT_TEXT, 11)])
    note = parse_signed_note(cosigned)
    assert note.text == CHECKPOINT_TEXT
    assert verified_cosignatures(note, [w1.verifier(), w2.verifier()]) == [
        w1.verifier(), w2.verifier()]
    assert with_cosignatures(cosigned, [w1.cosign(CHECKPOINT_TEXT, 10)]) == cosigned


def test_extension_lines_are_covered() -> None:
    text = CHECKPOINT_TEXT + "extension one\n"
    w = cosigner()
    signed = "".join([text, "\n", w.cosign(text, 5).line()])
    forged = signed.replace("extension one", "extension two")
    with pytest.raises(NoteVerificationError):
        verified_cosignatures(parse_signed_note(forged), [w.verifier()])


def test_unknown_cosigners_are_ignored_and_yield_nothing() -> None:
    note, _ = vector()
    assert verified_cosignatures(parse_signed_note(note), [cosigner().verifier()]) == []


def test_a_trusted_name_with_a_short_signature_is_refused() -> None:
    w = cosigner()
    short = base64.b64encode(w.verifier().key_id + b"\x00" * 64).decode()
    note = parse_signed_note(f"{CHECKPOINT_TEXT}\n— {w.name} {short}\n")
    with pytest.raises(NoteVerificationError, match="8 \\+ 64"):
        verified_cosignatures(note, [w.verifier()])


def test_two_keys_under_one_name_and_id_are_refused() -> None:
    a = cosigner(b"\x01" * 32).verifier()
    twin = type(a)(a.name, a.key_id, b"\x02" * 32)
    line = cosigner(b"\x01" * 32).cosign(CHECKPOINT_TEXT, 1).line()
    note = parse_signed_note(CHECKPOINT_TEXT + "\n" + line)
    with pytest.raises(NoteVerificationError, match="ambiguous"):
        verified_cosignatures(note, [a, twin])


@pytest.mark.parametrize("timestamp", [-1, 2**63])
def test_timestamps_outside_the_signed_range_are_refused(timestamp: int) -> None:
    with pytest.raises(MalformedNote, match="timestamp"):
        cosigner().cosign(CHECKPOINT_TEXT, timestamp)


def test_a_line_whose_timestamp_exceeds_2_63_is_malformed() -> None:
    raw = b"\x00" * 4 + (2**63).to_bytes(8, "big") + b"\x00" * 64
    with pytest.raises(MalformedNote, match="2\\^63"):
        parse_cosignature_line(f"— w.example {base64.b64encode(raw).decode()}")


@pytest.mark.parametrize("vkey", [
    "",
    "name+00000000",
    "name+0000000+BAAA",
    "name+ZZZZZZZZ+" + base64.b64encode(b"\x04" + b"\x00" * 32).decode(),
    "name+00000000+" + base64.b64encode(b"\x04" + b"\x00" * 32).decode(),
    "name+00000000+" + base64.b64encode(b"\x04" + b"\x00" * 31).decode(),
    "na me+00000000+" + base64.b64encode(b"\x04" + b"\x00" * 32).decode(),
    "name+00000000+not base64",
])
def test_malformed_cosigner_keys_are_refused(vkey: str) -> None:
    with pytest.raises(MalformedNote, match="malformed"):
        parse_cosigner_key(vkey)


@pytest.mark.parametrize("text", [
    "",
    "— w.example AAAA",
    "— w.example " + base64.b64encode(b"\x00" * 76).decode() + "\n\n",
    "- w.example " + base64.b64encode(b"\x00" * 76).decode() + "\n",
    "— w.example " + base64.b64encode(b"\x00" * 75).decode() + "\n",
    "— w.example " + base64.b64encode(b"\x00" * 77).decode() + "\n",
    "— w.example\n",
])
def test_malformed_cosignature_lines_are_refused(text: str) -> None:
    with pytest.raises(MalformedNote, match="malformed"):
        parse_cosignature_lines(text)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                           blacklist_characters="+"),
    min_size=1, max_size=40,
).filter(lambda n: not any(c.isspace() for c in n))


@given(name=names, key_id=st.binary(min_size=4, max_size=4),
       timestamp=st.integers(0, 2**63 - 1), signature=st.binary(min_size=64, max_size=64))
def test_lines_round_trip(name: str, key_id: bytes, timestamp: int, signature: bytes) -> None:
    c = Cosignature(name, key_id, timestamp, signature)
    assert parse_cosignature_line(c.line()) == c
    assert parse_cosignature_lines(c.line() * 2) == (c, c)


@given(st.text(max_size=200))
def test_the_parser_raises_only_malformed_note(text: str) -> None:
    try:
        parse_cosignature_lines(text)
    except MalformedNote as exc:
        assert str(exc).startswith("malformed")


@given(st.binary(max_size=100), st.integers(0, 99))
def test_corrupted_lines_never_escape_as_other_errors(raw: bytes, cut: int) -> None:
    line = cosigner().cosign(CHECKPOINT_TEXT, 1).line()
    damaged = line[:cut] + raw.decode("latin-1") + line[cut:]
    with contextlib.suppress(MalformedNote):
        parse_cosignature_lines(damaged)


@given(seed=st.binary(min_size=32, max_size=32), name=names)
def test_key_strings_round_trip(seed: bytes, name: str) -> None:
    w = cosigner(seed, name)
    assert parse_cosigner_key(w.verifier_key()) == w.verifier()
