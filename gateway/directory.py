"""The organisation directory: who exists, what kind they are, and their public keys.

Reads are served from an in-memory snapshot (the directory is small and read on every
request); writes go through the repository and refresh the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway import keys
from gateway.audit import AuditLog
from gateway.model import ChannelSettings, Contact, Organisation, OrgKind
from gateway.storage.base import DirectoryRepository

DEMO_ORGANISATIONS: tuple[Organisation, ...] = (
    Organisation(
        "POL-SFK-IPS", OrgKind.POLICE,
        "Suffolk Constabulary — Ipswich Police Investigation Centre", "Suffolk",
        Contact("Custody DIP SPOC", "01473 000 101", "dip.ipswich@police.example",
                "dip.ipswich@police.secure.example"),
    ),
    Organisation(
        "POL-NFK-NOR", OrgKind.POLICE,
        "Norfolk Constabulary — Norwich Police Investigation Centre", "Norfolk",
        Contact("Custody DIP SPOC", "01603 000 102", "dip.norwich@police.example",
                "dip.norwich@police.secure.example"),
    ),
    Organisation(
        "CJIT-SFK", OrgKind.CJIT, "Suffolk CJIT", "Suffolk",
        Contact("Suffolk CJIT SPOC", "01473 000 201", "spoc@suffolk-cjit.example",
                "spoc@suffolk-cjit.secure.example"),
        areas_served=("Ipswich", "Babergh", "Mid Suffolk", "East Suffolk", "West Suffolk"),
    ),
    Organisation(
        "CJIT-NFK", OrgKind.CJIT, "Norfolk CJIT", "Norfolk",
        Contact("Norfolk CJIT SPOC", "01603 000 202", "spoc@norfolk-cjit.example",
                "spoc@norfolk-cjit.secure.example"),
        areas_served=("Norwich", "Broadland", "South Norfolk", "Breckland", "North Norfolk",
                      "Great Yarmouth", "King's Lynn and West Norfolk"),
    ),
    Organisation(
        "CJIT-CAM", OrgKind.CJIT, "Cambridgeshire CJIT", "Cambridgeshire",
        Contact("Cambridgeshire CJIT SPOC", "01223 000 203", "spoc@cambs-cjit.example",
                "spoc@cambs-cjit.secure.example"),
        areas_served=("Cambridge", "South Cambridgeshire", "East Cambridgeshire", "Fenland",
                      "Huntingdonshire", "Peterborough"),
    ),
    Organisation(
        "CARAT-NWI", OrgKind.CARAT, "HMP Norwich CARAT team", "Norfolk",
        Contact("CARAT team leader", "01603 000 301", "carat@hmp-norwich.example"),
    ),
    Organisation(
        "CARAT-HPI", OrgKind.CARAT, "HMP Highpoint CARAT team", "Suffolk",
        Contact("CARAT team leader", "01440 000 302", "carat@hmp-highpoint.example"),
    ),
    Organisation(
        "PRB-EOE", OrgKind.PROBATION, "Probation Service — East of England", "East of England",
        Contact("DRR duty officer", "01223 000 401", "drr@probation-eoe.example",
                "drr@probation-eoe.secure.example"),
    ),
    Organisation(
        "CRT-IPS-MC", OrgKind.COURT, "Suffolk Magistrates' Court, Ipswich", "Suffolk",
        Contact("Court DIP liaison", "01473 000 501", "listing@ipswich-mc.example"),
    ),
    Organisation(
        "CRT-NOR-CC", OrgKind.COURT, "Norwich Crown Court", "Norfolk",
        Contact("Court DIP liaison", "01603 000 502", "listing@norwich-cc.example"),
    ),
)


class Directory:
    """In-memory view of the directory, refreshed from the repository after each change."""

    def __init__(self, repository: DirectoryRepository) -> None:
        self._repository = repository
        self._by_code: Mapping[str, Organisation] = {}
        self._by_key_id: Mapping[str, tuple[Organisation, Mapping[str, Any]]] = {}

    async def refresh(self) -> None:
        organisations = await self._repository.all()
        self._by_code = {org.code: org for org in organisations}
        by_key_id: dict[str, tuple[Organisation, Mapping[str, Any]]] = {}
        shared: set[str] = set()
        for org in organisations:
            for jwk in org.jwks:
                kid = str(jwk.get("kid"))
                if kid in by_key_id:
                    shared.add(kid)
                by_key_id[kid] = (org, jwk)
        # Fail closed: a key registered to two organisations identifies neither.
        self._by_key_id = {kid: entry for kid, entry in by_key_id.items() if kid not in shared}

    def key(self, key_id: str) -> tuple[Organisation, Mapping[str, Any]] | None:
        """The organisation a signing key belongs to, by its key id (RFC 7638 thumbprint)."""
        return self._by_key_id.get(key_id)

    def get(self, code: str) -> Organisation | None:
        return self._by_code.get(code)

    def all(self) -> list[Organisation]:
        return sorted(self._by_code.values(), key=lambda org: org.code)

    async def save(self, organisations: list[Organisation], at: datetime) -> None:
        await self._repository.upsert(organisations, at)
        await self.refresh()

    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> Organisation:
        await self._repository.set_channel(code, channel, actor, at, audit)
        await self.refresh()
        org = self.get(code)
        assert org is not None  # set_channel raised NotFound otherwise
        return org

    async def seed_demo(self, keys_dir: Path, at: datetime) -> None:
        """Add the demo organisations missing from the directory, each with a new dev key.

        Private keys go to ``keys_dir`` (0600) so ``dipgw token`` can sign for them.
        """
        missing = [org for org in DEMO_ORGANISATIONS if self.get(org.code) is None]
        seeded = []
        for org in missing:
            path = dev_key_path(keys_dir, org.code)
            private = keys.read_private(path) if path.exists() else None
            if private is None:
                private = keys.generate("EdDSA")
                keys.write_private(path, private)
            seeded.append(replace(org, jwks=(keys.public_jwk(private),)))
        if seeded:
            await self.save(seeded, at)


def dev_key_path(keys_dir: Path, org_code: str) -> Path:
    return keys_dir / f"{org_code}.jwk.json"
