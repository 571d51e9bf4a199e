"""The directory: organisations, their people, the keys each signs with, and the roles
the gateway has granted those people.

Reads are served from an in-memory snapshot (the directory is small and read on every
request); writes go through the repository and refresh the snapshot.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from gateway import keys
from gateway.domain.model import (
    AGENCY_KINDS,
    ChannelSettings,
    Contact,
    Grant,
    IdentityProvider,
    Organisation,
    OrgKind,
    Person,
    Role,
    SignIn,
)
from gateway.pipeline.audit import AuditLog
from gateway.storage.base import DirectoryRepository

T = TypeVar("T")

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
    Organisation(
        "CPS-EOE", OrgKind.CPS, "Crown Prosecution Service — East of England", "East of England",
        Contact("DIP liaison prosecutor", "01223 000 601", "dip@cps-eoe.example",
                "dip@cps-eoe.secure.example"),
    ),
    Organisation(
        "IOM-NFK", OrgKind.PPO_IOM, "Norfolk Integrated Offender Management (PPO) scheme",
        "Norfolk",
        Contact("IOM coordinator", "01603 000 701", "iom@norfolk-iom.example",
                "iom@norfolk-iom.secure.example"),
    ),
    Organisation(
        "TRT-SFK", OrgKind.TREATMENT_PROVIDER, "Suffolk community drug and alcohol service",
        "Suffolk",
        Contact("Referrals coordinator", "01473 000 801", "referrals@suffolk-cdas.example",
                "referrals@suffolk-cdas.secure.example"),
    ),
)


# The programme's oversight body and the gateway's operator, seeded beside the agencies.
DEMO_AUTHORITIES: tuple[Organisation, ...] = (
    Organisation(
        "DIP-ASSURE", OrgKind.OVERSIGHT, "DIP Audit and Assurance", "England",
        Contact("Assurance team", "020 7000 0601", "assurance@dip-oversight.example"),
    ),
    Organisation(
        "DIPGW-OPS", OrgKind.OPERATOR, "dipgw national service team", "England",
        Contact("Service desk", "020 7000 0701", "servicedesk@dipgw.example"),
    ),
)

# Demo people: (person id suffix, name, roles), a SPOC, an IG lead and an administrator per
# agency; the oversight body's auditor; two operator people (imports need a second one).
_AGENCY_STAFF: tuple[tuple[str, Role], ...] = (
    ("spoc", Role.SPOC), ("ig-lead", Role.IG_LEAD), ("admin", Role.ORG_ADMIN),
)
_AUTHORITY_STAFF: Mapping[str, tuple[tuple[str, str, Role], ...]] = {
    "DIP-ASSURE": (("auditor", "Grace Adeyemi", Role.AUDITOR),
                   ("admin", "Tom Whitfield", Role.ORG_ADMIN)),
    "DIPGW-OPS": (("operator", "Sam Okoro", Role.DIRECTORY_ADMIN),
                  ("operator2", "Lena Novak", Role.DIRECTORY_ADMIN)),
}
_DEMO_NAMES = (
    "Aisha Khan", "Ben Carter", "Chloe Evans", "Daniel Price", "Emma Hughes", "Farid Ahmed",
    "Georgia Bell", "Harry Morgan", "Isla Patel", "Jack Turner", "Kiran Shah", "Laura Reid",
    "Mohammed Ali", "Nina Brooks", "Owen Davies", "Priya Nair", "Ryan Walsh", "Sophie Clarke",
    "Tariq Hussain", "Ursula Grant", "Victor Lee", "Wendy Ford", "Yusuf Ibrahim",
    "Zara Mitchell", "Adam Fox", "Bella Stone", "Callum Reed", "Dina Cole", "Ethan Ward",
    "Fiona Lane",
)
BOOTSTRAP = "bootstrap"

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KeyHolder:
    """Who a registered signing key belongs to: one of an organisation's systems
    (``person`` None) or one of its people. A machine key never acts as a person."""

    org: Organisation
    jwk: Mapping[str, Any]
    person: Person | None = None


class Directory:
    """In-memory view of the directory, refreshed from the repository after each change
    (this process's own) and periodically or when notified (another process's)."""

    def __init__(self, repository: DirectoryRepository) -> None:
        self._repository = repository
        self._followers: list[Callable[[], Awaitable[None]]] = []
        self._by_code: Mapping[str, Organisation] = {}
        self._by_key_id: Mapping[str, KeyHolder] = {}
        self._people: Mapping[str, Person] = {}
        self._grants: Mapping[str, Grant] = {}
        self._roles: Mapping[str, frozenset[Role]] = {}
        self._refreshing = asyncio.Lock()

    async def _load(self) -> None:
        organisations = await self._repository.all()
        people = await self._repository.people()
        grants = await self._repository.grants()
        by_code = {org.code: org for org in organisations}
        holders: list[tuple[str, KeyHolder]] = [
            (str(jwk.get("kid")), KeyHolder(org, jwk)) for org in organisations for jwk in org.jwks
        ]
        holders += [
            (str(jwk.get("kid")), KeyHolder(by_code[person.org_code], jwk, person))
            for person in people for jwk in person.jwks
        ]
        by_key_id: dict[str, KeyHolder] = {}
        shared: set[str] = set()
        for kid, holder in holders:
            if kid in by_key_id:
                shared.add(kid)
            by_key_id[kid] = holder
        roles: dict[str, set[Role]] = defaultdict(set)
        for grant in grants:
            if grant.active:
                roles[grant.person_id].add(grant.role)
        self._by_code = by_code
        # Fail closed: a key registered twice (two organisations, or a system and a person)
        # identifies no one.
        self._by_key_id = {kid: h for kid, h in by_key_id.items() if kid not in shared}
        self._people = {person.id: person for person in people}
        self._grants = {grant.id: grant for grant in grants}
        self._roles = {person_id: frozenset(held) for person_id, held in roles.items()}

    async def refresh(self) -> None:
        """Read the directory again, then tell the followers.

        Refreshes run one at a time. Otherwise one that read the rows before a change
        committed (a periodic refresh, or another process's notification) could finish
        after the changing request's own refresh and put the old view back, undoing a
        change the request had already answered for."""
        async with self._refreshing:
            await self._load()
        for follower in self._followers:
            try:
                await follower()
            except Exception:
                # The view is current; the follower catches up at the next refresh (the
                # periodic one at the latest), and the change that made this one stands.
                log.exception("directory_follower_failed")

    def follow(self, follower: Callable[[], Awaitable[None]]) -> None:
        """Call ``follower`` after every refresh: what acts on the directory outside this
        view (the transport's queues and consumers) follows changes made by any process."""
        self._followers.append(follower)

    def key(self, key_id: str) -> KeyHolder | None:
        """Whose signing key this is, by its key id (RFC 7638 thumbprint)."""
        return self._by_key_id.get(key_id)

    def get(self, code: str) -> Organisation | None:
        return self._by_code.get(code)

    def by_code(self) -> Mapping[str, Organisation]:
        """Every organisation, by directory code (a read-only view of the snapshot)."""
        return self._by_code

    def all(self) -> list[Organisation]:
        return sorted(self._by_code.values(), key=lambda org: org.code)

    def agencies(self) -> list[Organisation]:
        """The organisations that exchange messages (not the oversight body or operator)."""
        return [org for org in self.all() if org.kind in AGENCY_KINDS]

    def person(self, person_id: str) -> Person | None:
        return self._people.get(person_id)

    def person_signing_in(self, sign_in: SignIn) -> Person | None:
        """The person whose directory record holds this OpenID Connect identity (issuer and
        subject together, OIDC Core 1.0 section 2), or None."""
        for person in self._people.values():
            if person.sign_in == sign_in:
                return person
        return None

    def people_of(self, org_code: str) -> list[Person]:
        return [p for p in self._people.values() if p.org_code == org_code]

    def roles_of(self, person_id: str) -> frozenset[Role]:
        """The roles a person holds now: their active grants, nothing else."""
        return self._roles.get(person_id, frozenset())

    def holders_of(self, role: Role) -> list[Person]:
        """Everyone who holds a role now."""
        return [p for p in self._people.values() if role in self.roles_of(p.id)]

    def grant(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def grants_of(self, person_id: str) -> list[Grant]:
        return [g for g in self._grants.values() if g.person_id == person_id]

    @property
    def repository(self) -> DirectoryRepository:
        """Where changes are written; make them through ``change`` so the view follows."""
        return self._repository

    async def change(self, write: Awaitable[T]) -> T:
        """Run one write (one audited transaction in the repository), then refresh the
        view, so the request that made a change, and every one after it, sees it."""
        result = await write
        await self.refresh()
        return result

    async def save(self, organisations: list[Organisation], at: datetime) -> None:
        await self.change(self._repository.upsert(organisations, at))

    async def set_channel(
        self, code: str, channel: ChannelSettings, actor: str, at: datetime, audit: AuditLog
    ) -> Organisation:
        await self.change(self._repository.set_channel(code, channel, actor, at, audit))
        org = self.get(code)
        assert org is not None  # set_channel raised NotFound otherwise
        return org

    async def seed_demo(
        self, keys_dir: Path, at: datetime, audit: AuditLog,
        identity_provider: IdentityProvider | None = None,
    ) -> None:
        """Add the demo organisations and people missing from the directory, each with a
        new development key, and grant the demo people their roles (audited, by
        ``bootstrap``).

        Private keys go to ``keys_dir`` (0600) so ``dipgw token`` can sign for them. Given
        a development ``identity_provider`` (``DIPGW_DEMO_OIDC_ISSUER``), every demo
        organisation registers it and each demo person signs in there with their person id
        as subject, so the OpenID Connect sign-in can be tried with ``make run``.
        """
        missing = [
            org for org in (*DEMO_ORGANISATIONS, *DEMO_AUTHORITIES) if self.get(org.code) is None
        ]
        seeded = [
            replace(org, jwks=(keys.public_jwk(_dev_key(dev_key_path(keys_dir, org.code))),),
                    identity_provider=identity_provider)
            for org in missing
        ]
        if seeded:
            await self.save(seeded, at)
        # One transaction for everyone: about ninety audited writes one by one were most
        # of a gateway's start-up.
        people: list[tuple[Person, tuple[Grant, ...]]] = []
        for person_id, org_code, name, role in demo_people():
            if self.person(person_id) is not None:
                continue
            org = self.get(org_code)
            assert org is not None
            private = _dev_key(person_key_path(keys_dir, org_code, person_id))
            email = f"{person_id.split('.', 1)[1]}@{org.spoc.email.split('@', 1)[1]}" if (
                org.spoc.email) else f"{person_id}@dipgw.example"
            sign_in = (SignIn(identity_provider.issuer, person_id)
                       if identity_provider is not None else None)
            people.append((
                Person(person_id, org_code, name, email, sign_in=sign_in,
                       jwks=(keys.public_jwk(private),)),
                (Grant(f"g-{person_id}-{role.value}", person_id, role, BOOTSTRAP, at,
                       "demo directory"),),
            ))
        if people:
            await self._repository.add_people(people, BOOTSTRAP, at, audit)
        await self.refresh()


def demo_people() -> list[tuple[str, str, str, Role]]:
    """(person id, organisation, name, role) of every demo person."""
    found: list[tuple[str, str, str, Role]] = []
    names = iter(_DEMO_NAMES * 2)
    for org in DEMO_ORGANISATIONS:
        for suffix, role in _AGENCY_STAFF:
            found.append((f"{org.code.lower()}.{suffix}", org.code, next(names), role))
    for code, staff in _AUTHORITY_STAFF.items():
        for suffix, name, role in staff:
            found.append((f"{code.lower()}.{suffix}", code, name, role))
    return found


def _dev_key(path: Path) -> dict[str, Any]:
    if path.exists():
        return keys.read_private(path)
    private = keys.generate("EdDSA")
    keys.write_private(path, private)
    return private


def dev_key_path(keys_dir: Path, org_code: str) -> Path:
    """An organisation system's development key."""
    return keys_dir / f"{org_code}.jwk.json"


def person_key_path(keys_dir: Path, org_code: str, person_id: str) -> Path:
    """A demo person's development key (``dipgw token --person``)."""
    return keys_dir / "people" / org_code / f"{person_id}.jwk.json"


def find_person_key(keys_dir: Path, person_id: str) -> tuple[str, Path] | None:
    """(organisation code, key file) of a demo person, found by their id."""
    for path in sorted((keys_dir / "people").glob(f"*/{person_id}.jwk.json")):
        return path.parent.name, path
    return None
