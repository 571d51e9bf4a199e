"""Integrating the audit log: growing the Merkle tree and signing checkpoints.

Sequencing happens in the transactions that record events; this module, the single
integrator, reads the sequenced leaf hashes, extends an in-memory compact range and
signs a C2SP checkpoint for each new size, periodically and on demand. Because the
range only ever extends the tree it was rebuilt from, and start-up refuses to sign when
the stored checkpoint does not match the stored entries, the gateway never signs two
inconsistent checkpoints.

Signing keys are files outside the database (created 0600). Rotation: ``dipgw audit
rotate-key`` leaves a ``next.key``; the integrator logs the new verifier key, signs the
next checkpoint with both the old and the new key, then retires the old one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.audit import AuditAction, AuditEvent
from gateway.errors import ConfigurationError
from gateway.periodic import Periodic
from gateway.storage.base import AuditRepository
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.merkle import CompactRange, root
from gateway.tlog.note import Signer, parse_signed_note

log = structlog.get_logger(__name__)

CURRENT, NEXT, RETIRED, PSEUDONYM = "current.key", "next.key", "retired", "pseudonym.key"


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read_key(path: Path) -> Ed25519PrivateKey:
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"{path} must be readable by its owner only (chmod 600)")
    seed = path.read_bytes()
    if len(seed) != 32:
        raise ConfigurationError(f"{path} does not hold a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def new_key_file(path: Path) -> None:
    _write_secret(path, _seed(Ed25519PrivateKey.generate()))


def stage_rotation(keys_dir: Path) -> Path:
    """Create the next signing key; the running gateway switches to it at its next
    checkpoint (``dipgw audit rotate-key``)."""
    path = keys_dir / NEXT
    if path.exists():
        raise ConfigurationError(f"a rotation is already waiting: {path}")
    new_key_file(path)
    return path


def pseudonym_key(keys_dir: Path) -> bytes:
    path = keys_dir / PSEUDONYM
    if not path.exists():
        _write_secret(path, os.urandom(32))
    return path.read_bytes()


class AuditKeys:
    def __init__(self, keys_dir: Path, origin: str) -> None:
        self.keys_dir = keys_dir
        self.origin = origin
        if not (keys_dir / CURRENT).exists():
            new_key_file(keys_dir / CURRENT)
        self.current = Signer(origin, _read_key(keys_dir / CURRENT))

    def retired(self) -> list[Signer]:
        folder = self.keys_dir / RETIRED
        return [
            Signer(self.origin, _read_key(path)) for path in sorted(folder.glob("*.key"))
        ] if folder.exists() else []

    def verifier_keys(self) -> list[str]:
        """Current first, then retired: what ``GET /v1/audit/keys`` answers."""
        return [self.current.verifier_key(), *(s.verifier_key() for s in self.retired())]

    def pending_rotation(self) -> Signer | None:
        path = self.keys_dir / NEXT
        return Signer(self.origin, _read_key(path)) if path.exists() else None

    def complete_rotation(self) -> None:
        retired = self.keys_dir / RETIRED
        retired.mkdir(mode=0o700, exist_ok=True)
        old = self.current
        os.replace(self.keys_dir / CURRENT, retired / f"{old.key_id.hex()}.key")
        os.replace(self.keys_dir / NEXT, self.keys_dir / CURRENT)
        self.current = Signer(self.origin, _read_key(self.keys_dir / CURRENT))


class CheckpointMismatch(Exception):
    """The stored log does not reproduce its own last checkpoint: refuse to sign."""


class Checkpointer:
    def __init__(
        self,
        log_store: AuditRepository,
        keys: AuditKeys,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._log = log_store
        self._keys = keys
        self._clock = clock
        self._range = CompactRange()
        self._lock = asyncio.Lock()
        self._periodic = Periodic("audit-checkpointer", self.integrate, interval_s)

    async def start(self) -> None:
        await self._rebuild()
        await self.integrate()
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _rebuild(self) -> None:
        size = await self._log.size()
        hashes = await self._log.leaf_hashes(0, size)
        self._range = CompactRange()
        self._range.extend(hashes)
        latest = await self._log.checkpoint()
        if latest:
            last_size, note = latest
            signed = Checkpoint.from_text(parse_signed_note(note).text)
            if last_size > size or root(hashes[:last_size]) != signed.root_hash:
                raise CheckpointMismatch(
                    f"the stored entries do not reproduce checkpoint {last_size}; "
                    "the audit log may have been altered — refusing to sign"
                )

    async def integrate(self) -> tuple[int, str] | None:
        """Sign a checkpoint for everything sequenced so far (and rotate keys if asked)."""
        async with self._lock:
            successor = self._keys.pending_rotation()
            if successor is not None:
                await self._log.record(AuditEvent(
                    action=AuditAction.SIGNING_KEY_ROTATED,
                    at=self._clock(),
                    actor="gateway",
                    details={"old_key": self._keys.current.verifier_key(),
                             "new_key": successor.verifier_key()},
                ))
            size = await self._log.size()
            latest = await self._log.checkpoint()
            last = latest[0] if latest else 0
            if size > self._range.size:
                self._range.extend(await self._log.leaf_hashes(self._range.size, size))
            if size <= last and successor is None:
                return latest
            checkpoint = Checkpoint(self._keys.origin, size, self._range.root())
            signers = [self._keys.current, *([successor] if successor else [])]
            note = sign_checkpoint(checkpoint, signers)
            if size > last:
                await self._log.add_checkpoint(size, note, self._clock())
            if successor is not None:
                self._keys.complete_rotation()
                log.info("audit_signing_key_rotated", key_id=self._keys.current.key_id.hex())
            return size, note
