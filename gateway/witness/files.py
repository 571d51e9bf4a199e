"""The witness's files: its Ed25519 key (a 32-byte seed, 0600) and the logs it witnesses.

The key file holds only the seed, like the gateway's audit keys, read through
``gateway.keyfiles`` (refused when others may read it). The witness's name is given
with it: the name is part of the key ID, and tlog-cosignature requires that one Ed25519
key never serve two names, so ``dipgw witness keygen`` prints the verifier key of the one
name the key is made for, and the operator starts the witness under that name.

The logs file holds one signed-note verifier key a line (what the gateway's
``GET /v1/audit/keys`` answers); the key's name is the log's origin. Blank lines and ``#``
comments are allowed; a file naming no log is refused, since such a witness would refuse
every request.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway import keyfiles
from gateway.domain.errors import ConfigurationError
from gateway.tlog.cosignature import Cosigner
from gateway.tlog.errors import MalformedNote
from gateway.tlog.witness import WitnessedLogs


def new_key_file(path: Path, name: str) -> Cosigner:
    """Make a new witness key at ``path`` (0600, never overwriting); return its cosigner."""
    key = Ed25519PrivateKey.generate()
    try:
        cosigner = Cosigner(name, key)
    except MalformedNote as exc:
        raise ConfigurationError(f"{name!r} cannot be a witness name: {exc}") from None
    if path.exists():
        raise ConfigurationError(f"{path} exists already: a witness key is never overwritten")
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    if not keyfiles.create_once(path, seed):
        raise ConfigurationError(f"{path} was made by another process meanwhile")
    return cosigner


def read_cosigner(path: Path, name: str) -> Cosigner:
    """The witness's cosigner from its key file and name."""
    seed = keyfiles.read_secret(path)
    if len(seed) != 32:
        raise ConfigurationError(f"{path} does not hold a 32-byte Ed25519 seed")
    try:
        return Cosigner(name, Ed25519PrivateKey.from_private_bytes(seed))
    except MalformedNote as exc:
        raise ConfigurationError(f"{name!r} cannot be a witness name: {exc}") from None


def read_logs(path: Path) -> WitnessedLogs:
    """The witnessed logs from a file of verifier keys (module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read the witnessed logs file {path}: {exc}") from None
    try:
        logs = WitnessedLogs.from_text(text)
    except MalformedNote as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    if not logs.logs:
        raise ConfigurationError(f"{path} names no log to witness (one verifier key a line)")
    return logs
