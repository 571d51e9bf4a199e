"""Integrating the audit log: growing the Merkle tree and signing checkpoints.

Sequencing happens in the transactions that record events; this module, the single
integrator, reads the sequenced leaf hashes, extends an in-memory tile frontier (the right
edge of the tree, ``gateway.tlog.tilehash.TileFrontier``) and signs a C2SP checkpoint for
each new size, periodically and on demand, storing with it, in one transaction, the full
hash tiles (C2SP tlog-tiles) that size fills: proofs are read from those tiles
(``gateway.services.audit_proofs``). Because the frontier only ever extends the tree it
was rebuilt from, and start-up refuses to sign when the stored tiles and the leaf hashes
past them do not reproduce the newest stored checkpoint, the gateway never signs two
inconsistent checkpoints.

Rebuilding reads O(log n) rows: the frontier at the newest checkpoint's size is restored
from the tile roots and leaf hashes at the tiles' right edge, then extended with the
entries sequenced since. A database from before revision 0004 has no tiles for the
checkpoints already issued: the leader builds them once, from the leaf hashes not yet
tiled, 65536 at a time (one level-1 tile; each step stores every tile it fills, so a
stopped backfill resumes where it stopped), the only bulk read of leaf hashes the
gateway makes. The check at the newest checkpoint then covers those tiles as it covered
the leaf hashes before. Only the leader signs (``gateway.services.leadership``): on a
standby ``integrate`` signs nothing and callers answer with the newest stored checkpoint,
which the leader refreshes every interval; a process that gains leadership first checks
the stored log against its newest checkpoint again, as at start, since another leader
signed in between.

Signing keys are files outside the database (created 0600), the same copy in every
gateway process (``gateway.keyfiles``: production never makes them, ``dipgw keys init``
does). Rotation: ``dipgw audit rotate-key`` leaves a ``next.key``; the integrator logs the
new verifier key, signs the next checkpoint with both the old and the new key, then
retires the old one. In a directory the gateway may not write (a read-only secrets mount)
the files stay as they are: the process signs with the new key from then on and still
publishes the old one, and the operator moves the files in the secret itself.
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

from gateway import keyfiles
from gateway.domain.errors import ConfigurationError
from gateway.periodic import Periodic
from gateway.pipeline.audit import AuditAction, AuditEvent
from gateway.services.leadership import Leadership
from gateway.storage.base import AuditRepository
from gateway.tlog.bundle import sign_checkpoint
from gateway.tlog.checkpoint import Checkpoint
from gateway.tlog.note import Signer, parse_signed_note
from gateway.tlog.tilehash import Tile, TileFrontier, frontier_reads
from gateway.tlog.tiles import TILE_WIDTH

log = structlog.get_logger(__name__)

CURRENT, NEXT, RETIRED, PSEUDONYM = "current.key", "next.key", "retired", "pseudonym.key"
# Leaf hashes read per step of a backfill: one full level-1 tile's worth (2 MiB).
BACKFILL_STEP = 1 << 16


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read_key(path: Path) -> Ed25519PrivateKey:
    seed = keyfiles.read_secret(path)
    if len(seed) != 32:
        raise ConfigurationError(f"{path} does not hold a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def new_key_file(path: Path) -> None:
    _write_secret(path, _seed(Ed25519PrivateKey.generate()))


def new_pseudonym_file(path: Path) -> None:
    _write_secret(path, os.urandom(32))


def stage_rotation(keys_dir: Path) -> Path:
    """Create the next signing key; the running gateway switches to it at its next
    checkpoint (``dipgw audit rotate-key``)."""
    path = keys_dir / NEXT
    if path.exists():
        raise ConfigurationError(f"a rotation is already waiting: {path}")
    new_key_file(path)
    return path


def pseudonym_key(keys_dir: Path, *, create: bool) -> bytes:
    """The audit log's HMAC key for pseudonyms: every process must hold the same one, or
    one person's entries carry a different pseudonym per process. Made only when
    ``create`` (development)."""
    path = keys_dir / PSEUDONYM
    if not path.exists():
        if not create:
            raise keyfiles.missing(path, "the audit log's pseudonym key (32 random bytes)",
                                   "DIPGW_AUDIT_KEYS_DIR")
        keyfiles.create_once(path, os.urandom(32))
    key = keyfiles.read_secret(path)
    if len(key) < 32:
        raise ConfigurationError(f"{path} must hold at least 32 bytes (it holds {len(key)})")
    return key


class AuditKeys:
    def __init__(self, keys_dir: Path, origin: str, *, create: bool) -> None:
        """``create``: make ``current.key`` when missing (development only)."""
        self.keys_dir = keys_dir
        self.origin = origin
        path = keys_dir / CURRENT
        if not path.exists():
            if not create:
                raise keyfiles.missing(
                    path, "the audit log's checkpoint signing key (an Ed25519 seed)",
                    "DIPGW_AUDIT_KEYS_DIR",
                )
            keyfiles.create_once(path, _seed(Ed25519PrivateKey.generate()))
        self.current = Signer(origin, _read_key(path))
        # Keys this process retired where it could not move the files (read-only mount).
        self._retired_in_memory: list[Signer] = []

    def retired(self) -> list[Signer]:
        folder = self.keys_dir / RETIRED
        on_disk = [
            Signer(self.origin, _read_key(path)) for path in sorted(folder.glob("*.key"))
        ] if folder.exists() else []
        known = {signer.public_key for signer in on_disk}
        return on_disk + [s for s in self._retired_in_memory if s.public_key not in known]

    def verifier_keys(self) -> list[str]:
        """Current first, then retired: what ``GET /v1/audit/keys`` answers."""
        return [self.current.verifier_key(), *(s.verifier_key() for s in self.retired())]

    def pending_rotation(self) -> Signer | None:
        path = self.keys_dir / NEXT
        if not path.exists():
            return None
        successor = Signer(self.origin, _read_key(path))
        # In a read-only directory next.key stays after its rotation (complete_rotation).
        return None if successor.public_key == self.current.public_key else successor

    def complete_rotation(self) -> None:
        if not os.access(self.keys_dir, os.W_OK):
            self._retired_in_memory.append(self.current)
            self.current = Signer(self.origin, _read_key(self.keys_dir / NEXT))
            log.warning(
                "audit_signing_key_rotated_in_memory", keys_dir=str(self.keys_dir),
                key_id=self.current.key_id.hex(),
                todo="the keys directory is read-only: in the secret, make next.key "
                     "current.key and keep the old current.key as retired/<its key id>.key",
            )
            return
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
        leadership: Leadership,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_signed: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_signed``: told after each new checkpoint is stored, never awaited (the
        witnesses are asked in the background: ``gateway.services.witnessing``)."""
        self._log = log_store
        self._on_signed = on_signed
        self._keys = keys
        self._leadership = leadership
        self._clock = clock
        self._frontier = TileFrontier()
        # Tiles the frontier filled that are not stored yet: they go with the next
        # checkpoint, and stay here until one is stored.
        self._unstored: list[Tile] = []
        # The leadership term the frontier was last rebuilt (and the log checked) in.
        self._term: int | None = None
        self._lock = asyncio.Lock()
        self._periodic = Periodic("audit-checkpointer", self.integrate, interval_s)

    async def start(self) -> None:
        # Every process checks the stored log at start, standby or not: an altered log
        # stops start-up wherever it is found.
        self._term = self._leadership.term
        await self._rebuild(leading=self._term is not None)
        await self.integrate()
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _rebuild(self, *, leading: bool) -> None:
        """Restore the frontier at the newest checkpoint from the stored tiles, check it
        against the signed root, and extend it with what was sequenced since."""
        size = await self._log.size()
        latest = await self._log.checkpoint()
        last_size = latest[0] if latest else 0
        if last_size > size:
            raise CheckpointMismatch(
                f"checkpoint {last_size} covers more entries than the {size} stored; "
                "the audit log may have been altered — refusing to sign"
            )
        if leading:
            await self._backfill(last_size)
        elif await self._log.tiled_size() < last_size - last_size % TILE_WIDTH:
            log.info("audit_tiles_pending", checkpoint_size=last_size,
                     why="the leader builds the tiles of earlier checkpoints and checks "
                         "them when it starts")
            return
        try:
            frontier = TileFrontier.restore(
                last_size, await self._log.stored_hashes(frontier_reads(last_size)))
        except LookupError as missing:
            raise CheckpointMismatch(
                f"the stored tiles or entries of checkpoint {last_size} are incomplete "
                f"({missing!r}); the audit log may have been altered — refusing to sign"
            ) from missing
        if latest:
            signed = Checkpoint.from_text(parse_signed_note(latest[1]).text)
            if frontier.root() != signed.root_hash:
                raise CheckpointMismatch(
                    f"the stored tiles and entries do not reproduce checkpoint {last_size}; "
                    "the audit log may have been altered — refusing to sign"
                )
        self._unstored = frontier.extend(await self._log.leaf_hashes(last_size, size))
        self._frontier = frontier

    async def _backfill(self, checkpoint_size: int) -> None:
        """Store the tiles a checkpoint issued before the tiles were kept fills, from the
        leaf hashes past the last stored tile (see the module docstring)."""
        tiled = await self._log.tiled_size()
        if tiled >= checkpoint_size - checkpoint_size % TILE_WIDTH:
            return
        log.info("audit_tiles_backfill", tiled=tiled, checkpoint_size=checkpoint_size)
        frontier = TileFrontier.restore(
            tiled, await self._log.stored_hashes(frontier_reads(tiled)))
        for start in range(tiled, checkpoint_size, BACKFILL_STEP):
            leaves = await self._log.leaf_hashes(
                start, min(start + BACKFILL_STEP, checkpoint_size))
            await self._log.add_tiles(frontier.extend(leaves))

    async def integrate(self) -> tuple[int, str] | None:
        """Sign a checkpoint for everything sequenced so far (and rotate keys if asked);
        None, signing nothing, unless this process leads."""
        async with self._lock:
            term = await self._leadership.confirm()
            if term is None:
                return None
            if term != self._term:
                await self._rebuild(leading=True)
                self._term = term
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
            if size > self._frontier.size:
                self._unstored += self._frontier.extend(
                    await self._log.leaf_hashes(self._frontier.size, size))
            if size <= last and successor is None:
                return latest
            checkpoint = Checkpoint(self._keys.origin, size, self._frontier.root())
            signers = [self._keys.current, *([successor] if successor else [])]
            note = sign_checkpoint(checkpoint, signers)
            if size > last:
                await self._log.add_checkpoint(size, note, self._clock(), self._unstored)
                self._unstored = []
                self._on_signed()
            if successor is not None:
                self._keys.complete_rotation()
                log.info("audit_signing_key_rotated", key_id=self._keys.current.key_id.hex())
            return size, note
