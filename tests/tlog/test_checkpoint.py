"""C2SP tlog-checkpoint v1.0.0 note bodies and signed checkpoints."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from gateway.tlog.checkpoint import Checkpoint, open_checkpoint
from gateway.tlog.errors import MalformedCheckpoint, MalformedNote, NoteVerificationError, TlogError
from gateway.tlog.note import Signer, parse_verifier_key

ROOT = hashlib.sha256(b"root").digest()
B64 = base64.b64encode(ROOT).decode()
GOOD = f"example.com/log\n20852163\n{B64}\n"
FIXTURES = Path(__file__).parent / "fixtures"


def test_round_trip() -> None:
    cp = Checkpoint.from_text(GOOD)
    assert cp == Checkpoint("example.com/log", 20852163, ROOT)
    assert cp.to_text() == GOOD
    ext = Checkpoint.from_text(GOOD + "ext one\n— ext two\n")
    assert ext.extensions == ("ext one", "— ext two")
    assert ext.to_text() == GOOD + "ext one\n— ext two\n"
    assert Checkpoint.from_text(f"o\n0\n{B64}\n").size == 0


HOSTILE = [
    "",
    "\n",
    GOOD[:-1],
    "example.com/log\n20852163\n",
    f"\n20852163\n{B64}\n",
    f"example.com/log\n020852163\n{B64}\n",
    f"example.com/log\n00\n{B64}\n",
    f"example.com/log\n-1\n{B64}\n",
    f"example.com/log\n+1\n{B64}\n",
    f"example.com/log\n1_000\n{B64}\n",
    f"example.com/log\n\uff11\uff12\n{B64}\n",  # full-width digits
    f"example.com/log\n 1\n{B64}\n",
    f"example.com/log\n1e3\n{B64}\n",
    f"example.com/log\n{2**64}\n{B64}\n",
    f"example.com/log\n1\n{base64.b64encode(ROOT + b'x').decode()}\n",  # 33-byte root
    f"example.com/log\n1\n{base64.b64encode(ROOT[:31]).decode()}\n",
    f"example.com/log\n1\n{B64.rstrip('=')}\n",
    f"example.com/log\n1\n{B64[:-2]}B=\n",  # non-canonical trailing bits
    f"example.com/log\n1\n{B64} \n",
    f"example.com/log\n1\n{B64}\n\n",  # empty extension line (extra blank line)
    f"example.com/log\n1\n{B64}\next\n\n",
    f"example.com/log\r\n1\n{B64}\n",
    f"example.com/log\n1\n\n{B64}\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_checkpoints(text: str) -> None:
    with pytest.raises(MalformedCheckpoint, match=r"^malformed"):
        Checkpoint.from_text(text)


def test_constructor_validates() -> None:
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("", 1, ROOT)
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("a", 1, ROOT + b"x")
    with pytest.raises(MalformedCheckpoint):
        Checkpoint("a", -1, ROOT)


def test_open_checkpoint() -> None:
    s = Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    keys = [parse_verifier_key(s.verifier_key())]
    opened = open_checkpoint(s.sign(GOOD), keys)
    assert opened.checkpoint.size == 20852163
    assert opened.signers == tuple(keys)
    with pytest.raises(MalformedCheckpoint):
        open_checkpoint(s.sign(f"example.com/log\n1\n{B64}\n\n"), keys)  # blank line in body
    with pytest.raises(NoteVerificationError):
        open_checkpoint(s.sign(GOOD).replace("20852163", "20852164"), keys)
    with pytest.raises(MalformedNote):
        open_checkpoint(s.sign(GOOD).replace("\n\n", "\n"), keys)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("hostile-checkpoint-*")), ids=str)
def test_hostile_fixture_files(fixture: Path) -> None:
    s = Signer("example.com/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    with pytest.raises(TlogError):
        open_checkpoint(fixture.read_bytes(), [parse_verifier_key(s.verifier_key())])


@given(st.text(max_size=200))
def test_fuzz_only_raises_malformed(text: str) -> None:
    with contextlib.suppress(MalformedCheckpoint):
        Checkpoint.from_text(text)
