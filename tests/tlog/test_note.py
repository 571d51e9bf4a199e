"""C2SP signed-note v1.0.0 with Ed25519: signing, verifying, hostile input."""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.tlog.errors import MalformedNote, NoteVerificationError
from gateway.tlog.note import (
    NoteSignature,
    SignedNote,
    Signer,
    key_id,
    parse_signed_note,
    parse_verifier_key,
    verify_note,
)

SEED = bytes(range(32))
NAME = "dipgw.example/audit"
TEXT = "dipgw.example/audit\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"


def signer(seed: bytes = SEED, name: str = NAME) -> Signer:
    return Signer(name, Ed25519PrivateKey.from_private_bytes(seed))


def test_key_id_matches_hand_computed_sha256() -> None:
    s = signer()
    pub = s.public_key
    assert len(pub) == 32
    digest = hashlib.sha256(NAME.encode() + b"\x0a" + b"\x01" + pub).digest()
    assert key_id(NAME, pub) == digest[:4]
    vkey = s.verifier_key()
    encoded = base64.b64encode(b"\x01" + pub).decode()
    assert vkey == f"{NAME}+{digest[:4].hex()}+{encoded}"
    v = parse_verifier_key(vkey)
    assert (v.name, v.key_id, v.public_key) == (NAME, digest[:4], pub)
    assert v.key_string() == vkey


def test_sign_and_verify_round_trip() -> None:
    s = signer()
    signed = s.sign(TEXT)
    assert signed.startswith(TEXT + "\n\u2014 " + NAME + " ")
    assert signed.endswith("\n")
    note = parse_signed_note(signed)
    assert note.text == TEXT
    assert note.to_text() == signed
    (sig,) = note.signatures
    assert sig.key_id == s.key_id and len(sig.signature) == 64
    assert verify_note(note, [parse_verifier_key(s.verifier_key())]) == [NAME]
    assert parse_signed_note(signed.encode()) == note


def test_text_may_contain_blank_lines() -> None:
    s = signer()
    text = "line one\n\nline three\n"
    note = parse_signed_note(s.sign(text))
    assert note.text == text
    assert verify_note(note, [parse_verifier_key(s.verifier_key())]) == [NAME]


def test_unknown_keys_ignored_known_bad_signature_rejected() -> None:
    s, other = signer(), signer(bytes(32), "other.example/log")
    same_name = signer(bytes([7]) * 32)
    note = parse_signed_note(s.sign(TEXT))
    extra = (
        other.signature(TEXT),
        same_name.signature(TEXT),  # same name, different key ID: unknown, ignored
        NoteSignature("not.known", s.key_id, bytes(64)),  # same ID, other name: ignored
    )
    with_extra = SignedNote(note.text, note.signatures + extra)
    assert verify_note(with_extra, [parse_verifier_key(s.verifier_key())]) == [NAME]

    forged = SignedNote(note.text, (NoteSignature(NAME, s.key_id, bytes(64)), *extra))
    with pytest.raises(NoteVerificationError, match="invalid signature by trusted key"):
        verify_note(forged, [parse_verifier_key(s.verifier_key())])

    with pytest.raises(NoteVerificationError, match="no signature by a trusted key"):
        verify_note(note, [parse_verifier_key(other.verifier_key())])

    tampered = SignedNote(TEXT.replace("3", "4"), note.signatures)
    with pytest.raises(NoteVerificationError, match="invalid signature"):
        verify_note(tampered, [parse_verifier_key(s.verifier_key())])


def test_rotation_two_signatures() -> None:
    old, new = signer(), signer(bytes([9]) * 32)
    from gateway.tlog.note import sign_note, verified_keys

    note = parse_signed_note(sign_note(TEXT, [old, new]))
    keys = [parse_verifier_key(old.verifier_key()), parse_verifier_key(new.verifier_key())]
    assert [v.key_id for v in verified_keys(note, keys)] == [old.key_id, new.key_id]
    assert verify_note(note, keys[1:]) == [NAME]


def _sig_b64(signed: str) -> str:
    return signed.rsplit(" ", 1)[1].rstrip("\n")


VALID = signer().sign(TEXT)
B64 = _sig_b64(VALID)

HOSTILE_NOTES = [
    "",
    "\n",
    "\n\n",
    TEXT,
    VALID[:-1],  # missing final newline
    VALID + "\n",  # trailing blank line: no signatures after the last blank line
    VALID.replace("\n\n", "\n"),  # no blank line
    VALID.replace("\u2014 ", "- "),  # no em dash
    VALID.replace("\u2014 ", "\u2013 "),  # en dash
    VALID.replace("\u2014 ", "\u2014"),  # no space after the dash
    VALID.replace("\u2014 ", " \u2014 "),
    VALID.replace(f"{NAME} ", f"{NAME}  "),  # double space
    VALID.replace(f" {NAME} ", " "),  # no name
    VALID.replace(f" {NAME} ", f" {NAME}+x "),  # plus in name
    VALID.replace(f" {NAME} ", f" {NAME}\u00a0x "),  # Unicode space in name
    VALID.replace(B64, B64 + "="),
    VALID.replace(B64, B64.replace("=", "")),  # unpadded
    VALID.replace(B64, "!" + B64[1:]),  # bad base64 character
    VALID.replace(B64, base64.b64encode(b"\x01\x02\x03\x04").decode()),  # too short
    VALID.replace(B64, "AAAAAAB="),  # non-canonical trailing bits
    VALID.replace("\n", "\r\n"),
    VALID.replace("\n\n", "\n\t\n"),
    VALID.replace("3", "\x00"),
    VALID + "\u2014 " + NAME + "\n",  # signature line without signature
    VALID + "not a signature\n",
    VALID + "\n\u2014 x " + B64 + "\n\n",  # extra blank lines at the end
    VALID.replace("dipgw", "\ud800"),  # lone surrogate: not UTF-8
    VALID + "".join(f"\u2014 k{i} {B64}\n" for i in range(101)),  # too many signatures
]


@pytest.mark.parametrize("hostile", HOSTILE_NOTES)
def test_hostile_notes_raise_malformed(hostile: str) -> None:
    with pytest.raises(MalformedNote, match=r"^malformed"):
        parse_signed_note(hostile)


@pytest.mark.parametrize(
    "hostile",
    [
        VALID.replace(B64, B64[:-4]),  # shorter signature: well-formed, fails to verify
        VALID.replace("\n\n", "\n\n\n"),  # extra blank line joins the signed text
        VALID.replace("\n\n", "\n\n\n\n"),
    ],
)
def test_well_formed_but_unverifiable(hostile: str) -> None:
    note = parse_signed_note(hostile)
    with pytest.raises(NoteVerificationError):
        verify_note(note, [parse_verifier_key(signer().verifier_key())])


@pytest.mark.parametrize(
    "data", [b"\xff\xfe", VALID.encode()[:-3] + b"\xe2\x80\n", b"\x00" * (1 << 21)]
)
def test_hostile_bytes_raise_malformed(data: bytes) -> None:
    with pytest.raises(MalformedNote, match=r"^malformed"):
        parse_signed_note(data)


VKEY = signer().verifier_key()
VNAME, VID, VB64 = VKEY.split("+", 2)
WRONG_TYPE = base64.b64encode(b"\x02" + bytes(32)).decode()
WRONG_LENGTH = base64.b64encode(b"\x01" + bytes(33)).decode()


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        "+",
        "++",
        VKEY + "+",
        f"{VNAME}+{VID}",
        f"+{VID}+{VB64}",
        f"{VNAME}+{VID.upper()}+{VB64}",
        f"{VNAME}+{VID[:-1]}+{VB64}",
        f"{VNAME}+{VID}0+{VB64}",
        f"{VNAME}+zzzzzzzz+{VB64}",
        f"{VNAME}+00000000+{VB64}",  # key ID does not match
        f"other+{VID}+{VB64}",  # key ID does not match the name
        f"{VNAME}+{VID}+{VB64[:-4]}",
        f"{VNAME}+{VID}+{WRONG_TYPE}",
        f"{VNAME}+{VID}+{WRONG_LENGTH}",
        f"{VNAME}+{VID}+{VB64}\n",
        f"{VNAME} x+{VID}+{VB64}",
        f"{VNAME}+{VID}+é{VB64}",
    ],
)
def test_hostile_verifier_keys(hostile: str) -> None:
    with pytest.raises(MalformedNote, match=r"^malformed"):
        parse_verifier_key(hostile)


@pytest.mark.parametrize("text", ["", "no newline", "bad\x01\n", "\ud800\n"])
def test_refuses_to_sign_bad_text(text: str) -> None:
    with pytest.raises(MalformedNote):
        signer().sign(text)


def test_bad_signer_name() -> None:
    with pytest.raises(MalformedNote):
        signer(name="a b")


@given(st.text(max_size=300))
def test_fuzz_parse_only_raises_malformed(text: str) -> None:
    with contextlib.suppress(MalformedNote):
        parse_signed_note(text)


@given(st.integers(0, len(VALID) - 1), st.characters(), st.booleans())
def test_fuzz_mutated_valid_note(pos: int, char: str, insert: bool) -> None:
    mutated = VALID[:pos] + char + VALID[pos + (0 if insert else 1) :]
    keys = [parse_verifier_key(VKEY)]
    try:
        note = parse_signed_note(mutated)
    except MalformedNote:
        return
    try:
        names = verify_note(note, keys)
    except NoteVerificationError:
        return
    assert names == [NAME]
    assert note.text == TEXT


@given(st.binary(max_size=200))
def test_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedNote):
        parse_signed_note(data)
