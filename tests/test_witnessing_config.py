"""``DIPGW_WITNESSES``: the witnesses file is read strictly, and a bad line stops start-up
(fail closed: a witness silently dropped is a quorum silently lost)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import Settings
from gateway.domain.errors import ConfigurationError
from gateway.services.witnessing import parse_witnesses, read_witnesses
from gateway.tlog.cosignature import Cosigner
from gateway.tlog.note import Signer

W1 = Cosigner("w1.example", Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
W2 = Cosigner("w2.example", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))


def test_settings_read_the_witness_variables(tmp_path: Path) -> None:
    settings = Settings.from_env({"DIPGW_WITNESSES": str(tmp_path / "w.txt"),
                                  "DIPGW_WITNESS_TIMEOUT_SECONDS": "2.5"})
    assert settings.witnesses_file == tmp_path / "w.txt"
    assert settings.witness_timeout_s == 2.5
    assert Settings.from_env({}).witnesses_file is None
    with pytest.raises(ConfigurationError):
        Settings.from_env({"DIPGW_WITNESS_TIMEOUT_SECONDS": "0"})


def test_the_file_names_each_witness_and_its_url(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_text(f"# ours\n\n{W1.verifier_key()} https://w1.example/\n"
                    f"  {W2.verifier_key()}   http://10.0.0.2:7380\n", encoding="utf-8")
    found = read_witnesses(path)
    assert [(w.verifier, w.url) for w in found] == [
        (W1.verifier(), "https://w1.example"), (W2.verifier(), "http://10.0.0.2:7380")]
    assert read_witnesses(None) == ()


LOG_KEY = Signer("log.example", Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))


@pytest.mark.parametrize(("text", "reason"), [
    (f"{W1.verifier_key()}\n", "expected"),
    (f"{W1.verifier_key()} https://a https://b\n", "expected"),
    (f"{W1.verifier_key()} ftp://w1.example\n", "http"),
    (f"{LOG_KEY.verifier_key()} https://w1.example\n", "0x04"),
    (f"{W1.verifier_key()[:-2]}AA https://w1.example\n", "malformed"),
    (f"{W1.verifier_key()} https://a\n{W1.verifier_key()} https://b\n", "twice"),
])
def test_a_bad_line_stops_start_up(text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        parse_witnesses(text, "witnesses.txt")


def test_an_unreadable_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_witnesses(tmp_path / "missing.txt")
